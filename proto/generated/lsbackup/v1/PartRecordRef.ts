// Original file: proto/lsbackup.proto

import type { Long } from '@grpc/proto-loader';

export interface PartRecordRef {
  'path'?: (string);
  'size'?: (number | string | Long);
  'sha256'?: (string);
}

export interface PartRecordRef__Output {
  'path': (string);
  'size': (number);
  'sha256': (string);
}
