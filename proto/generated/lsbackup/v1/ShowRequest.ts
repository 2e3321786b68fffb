// Original file: proto/lsbackup.proto


export interface ShowRequest {
  'target'?: (string);
  'backupId'?: (string);
}

export interface ShowRequest__Output {
  'target': (string);
  'backupId': (string);
}
