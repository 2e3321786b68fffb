// Original file: proto/lsbackup.proto

import type { ExternalData as _lsbackup_v1_ExternalData, ExternalData__Output as _lsbackup_v1_ExternalData__Output } from '../../lsbackup/v1/ExternalData';

export interface AgentReleaseRequest {
  'backupId'?: (string);
  'target'?: (string);
  'node'?: (string);
  'component'?: (string);
  'meta'?: ({[key: string]: string});
  'external'?: (_lsbackup_v1_ExternalData | null);
}

export interface AgentReleaseRequest__Output {
  'backupId': (string);
  'target': (string);
  'node': (string);
  'component': (string);
  'meta': ({[key: string]: string});
  'external': (_lsbackup_v1_ExternalData__Output | null);
}
