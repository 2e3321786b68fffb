// Original file: proto/lsbackup.proto


export interface AgentBackupRequest {
  'backupId'?: (string);
  'target'?: (string);
  'node'?: (string);
  'components'?: (string)[];
}

export interface AgentBackupRequest__Output {
  'backupId': (string);
  'target': (string);
  'node': (string);
  'components': (string)[];
}
