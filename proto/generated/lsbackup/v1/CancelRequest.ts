// Original file: proto/lsbackup.proto


export interface CancelRequest {
  'target'?: (string);
  'backupId'?: (string);
  'node'?: (string);
}

export interface CancelRequest__Output {
  'target': (string);
  'backupId': (string);
  'node': (string);
}
