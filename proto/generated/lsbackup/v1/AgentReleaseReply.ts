// Original file: proto/lsbackup.proto


export interface AgentReleaseReply {
  'released'?: (boolean);
  'message'?: (string);
}

export interface AgentReleaseReply__Output {
  'released': (boolean);
  'message': (string);
}
