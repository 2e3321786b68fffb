// Original file: proto/lsbackup.proto


export interface AgentCancelRequest {
  'backupId'?: (string);
}

export interface AgentCancelRequest__Output {
  'backupId': (string);
}
