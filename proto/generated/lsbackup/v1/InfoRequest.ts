// Original file: proto/lsbackup.proto

import type { ComponentPlan as _lsbackup_v1_ComponentPlan, ComponentPlan__Output as _lsbackup_v1_ComponentPlan__Output } from '../../lsbackup/v1/ComponentPlan';

export interface InfoRequest {
  'target'?: (string);
  'components'?: (string)[];
  'plans'?: (_lsbackup_v1_ComponentPlan)[];
}

export interface InfoRequest__Output {
  'target': (string);
  'components': (string)[];
  'plans': (_lsbackup_v1_ComponentPlan__Output)[];
}
