// Original file: proto/lsbackup.proto


export interface ListRequest {
  'target'?: (string);
}

export interface ListRequest__Output {
  'target': (string);
}
