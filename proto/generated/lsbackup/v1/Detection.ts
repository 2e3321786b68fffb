// Original file: proto/lsbackup.proto


export interface Detection {
  'component'?: (string);
  'present'?: (boolean);
  'configured'?: (boolean);
  'detail'?: (string);
}

export interface Detection__Output {
  'component': (string);
  'present': (boolean);
  'configured': (boolean);
  'detail': (string);
}
