// Original file: proto/lsbackup.proto


export interface PruneReply {
  'removed'?: (string)[];
  'kept'?: (string)[];
  'reasons'?: (string)[];
  'held'?: (string)[];
}

export interface PruneReply__Output {
  'removed': (string)[];
  'kept': (string)[];
  'reasons': (string)[];
  'held': (string)[];
}
