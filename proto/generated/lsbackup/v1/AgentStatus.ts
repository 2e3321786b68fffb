// Original file: proto/lsbackup.proto

import type { InfoReply as _lsbackup_v1_InfoReply, InfoReply__Output as _lsbackup_v1_InfoReply__Output } from '../../lsbackup/v1/InfoReply';

export interface AgentStatus {
  'node'?: (string);
  'address'?: (string);
  'reachable'?: (boolean);
  'error'?: (string);
  'info'?: (_lsbackup_v1_InfoReply | null);
  'expectedComponents'?: (string)[];
}

export interface AgentStatus__Output {
  'node': (string);
  'address': (string);
  'reachable': (boolean);
  'error': (string);
  'info': (_lsbackup_v1_InfoReply__Output | null);
  'expectedComponents': (string)[];
}
