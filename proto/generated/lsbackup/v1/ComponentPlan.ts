// Original file: proto/lsbackup.proto


export interface ComponentPlan {
  'component'?: (string);
  'optional'?: (boolean);
  'facts'?: ({[key: string]: string});
}

export interface ComponentPlan__Output {
  'component': (string);
  'optional': (boolean);
  'facts': ({[key: string]: string});
}
