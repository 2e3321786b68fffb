// Original file: proto/lsbackup.proto

import type { SetInfo as _lsbackup_v1_SetInfo, SetInfo__Output as _lsbackup_v1_SetInfo__Output } from '../../lsbackup/v1/SetInfo';

export interface ListReply {
  'sets'?: (_lsbackup_v1_SetInfo)[];
}

export interface ListReply__Output {
  'sets': (_lsbackup_v1_SetInfo__Output)[];
}
