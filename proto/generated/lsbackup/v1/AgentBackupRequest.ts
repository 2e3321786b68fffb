// Original file: proto/lsbackup.proto

import type { ComponentPlan as _lsbackup_v1_ComponentPlan, ComponentPlan__Output as _lsbackup_v1_ComponentPlan__Output } from '../../lsbackup/v1/ComponentPlan';

export interface AgentBackupRequest {
  'backupId'?: (string);
  'target'?: (string);
  'node'?: (string);
  'components'?: (string)[];
  'plans'?: (_lsbackup_v1_ComponentPlan)[];
  'setFormat'?: (number);
  'parentId'?: (string);
  'recipients'?: (string)[];
  'idKey'?: (Buffer | Uint8Array | string);
}

export interface AgentBackupRequest__Output {
  'backupId': (string);
  'target': (string);
  'node': (string);
  'components': (string)[];
  'plans': (_lsbackup_v1_ComponentPlan__Output)[];
  'setFormat': (number);
  'parentId': (string);
  'recipients': (string)[];
  'idKey': (Buffer);
}
