// Original file: proto/lsbackup.proto

import type { Long } from '@grpc/proto-loader';

export interface ComponentEstimate {
  'component'?: (string);
  'bytes'?: (number | string | Long);
  'health'?: (string);
  'detail'?: (string);
}

export interface ComponentEstimate__Output {
  'component': (string);
  'bytes': (number);
  'health': (string);
  'detail': (string);
}
