// Original file: proto/lsbackup.proto


export interface VerifyRequest {
  'target'?: (string);
  'backupId'?: (string);
  'quick'?: (boolean);
  'sample'?: (number | string);
  'identity'?: (string);
  'keyIds'?: (string)[];
}

export interface VerifyRequest__Output {
  'target': (string);
  'backupId': (string);
  'quick': (boolean);
  'sample': (number);
  'identity': (string);
  'keyIds': (string)[];
}
