// Original file: proto/lsbackup.proto


export interface CancelReply {
  'cancelled'?: (string)[];
}

export interface CancelReply__Output {
  'cancelled': (string)[];
}
