// Original file: proto/lsbackup.proto

import type { ComponentResult as _lsbackup_v1_ComponentResult, ComponentResult__Output as _lsbackup_v1_ComponentResult__Output } from '../../lsbackup/v1/ComponentResult';

export interface RunSummary {
  'backupId'?: (string);
  'status'?: (string);
  'reasons'?: (string)[];
  'parts'?: (_lsbackup_v1_ComponentResult)[];
  'notCovered'?: (string)[];
  'setDir'?: (string);
}

export interface RunSummary__Output {
  'backupId': (string);
  'status': (string);
  'reasons': (string)[];
  'parts': (_lsbackup_v1_ComponentResult__Output)[];
  'notCovered': (string)[];
  'setDir': (string);
}
