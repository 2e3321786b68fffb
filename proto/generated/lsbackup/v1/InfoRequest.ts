// Original file: proto/lsbackup.proto


export interface InfoRequest {
  'target'?: (string);
  'components'?: (string)[];
}

export interface InfoRequest__Output {
  'target': (string);
  'components': (string)[];
}
