// Original file: proto/lsbackup.proto


export interface VerifyRequest {
  'target'?: (string);
  'backupId'?: (string);
}

export interface VerifyRequest__Output {
  'target': (string);
  'backupId': (string);
}
