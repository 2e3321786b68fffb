// Original file: proto/lsbackup.proto

import type { AgentStatus as _lsbackup_v1_AgentStatus, AgentStatus__Output as _lsbackup_v1_AgentStatus__Output } from '../../lsbackup/v1/AgentStatus';

export interface AgentsReply {
  'agents'?: (_lsbackup_v1_AgentStatus)[];
  'notCovered'?: (string)[];
}

export interface AgentsReply__Output {
  'agents': (_lsbackup_v1_AgentStatus__Output)[];
  'notCovered': (string)[];
}
