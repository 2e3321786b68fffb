// Original file: proto/lsbackup.proto


export interface VerifyRequest {
  'target'?: (string);
  'backupId'?: (string);
  'quick'?: (boolean);
}

export interface VerifyRequest__Output {
  'target': (string);
  'backupId': (string);
  'quick': (boolean);
}
