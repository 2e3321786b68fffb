// Original file: proto/lsbackup.proto

import type { SetInfo as _lsbackup_v1_SetInfo, SetInfo__Output as _lsbackup_v1_SetInfo__Output } from '../../lsbackup/v1/SetInfo';

export interface ShowReply {
  'set'?: (_lsbackup_v1_SetInfo | null);
  'manifestJson'?: (string);
}

export interface ShowReply__Output {
  'set': (_lsbackup_v1_SetInfo__Output | null);
  'manifestJson': (string);
}
