// Original file: proto/lsbackup.proto


export interface AgentReleaseRequest {
  'backupId'?: (string);
  'target'?: (string);
  'node'?: (string);
  'component'?: (string);
  'meta'?: ({[key: string]: string});
}

export interface AgentReleaseRequest__Output {
  'backupId': (string);
  'target': (string);
  'node': (string);
  'component': (string);
  'meta': ({[key: string]: string});
}
