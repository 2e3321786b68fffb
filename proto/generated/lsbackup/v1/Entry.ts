// Original file: proto/lsbackup.proto

import type { Long } from '@grpc/proto-loader';

export interface Entry {
  'archive'?: (string);
  'name'?: (string);
  'path'?: (string);
  'type'?: (string);
  'size'?: (number | string | Long);
  'sha256'?: (string);
  'mode'?: (number);
  'uid'?: (number);
  'gid'?: (number);
  'mtimeNs'?: (string);
  'linkTarget'?: (string);
}

export interface Entry__Output {
  'archive': (string);
  'name': (string);
  'path': (string);
  'type': (string);
  'size': (number);
  'sha256': (string);
  'mode': (number);
  'uid': (number);
  'gid': (number);
  'mtimeNs': (string);
  'linkTarget': (string);
}
