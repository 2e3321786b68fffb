// Original file: proto/lsbackup.proto


export interface FilesRequest {
  'target'?: (string);
  'backupId'?: (string);
  'node'?: (string);
  'component'?: (string);
  'identity'?: (string);
  'keyIds'?: (string)[];
}

export interface FilesRequest__Output {
  'target': (string);
  'backupId': (string);
  'node': (string);
  'component': (string);
  'identity': (string);
  'keyIds': (string)[];
}
