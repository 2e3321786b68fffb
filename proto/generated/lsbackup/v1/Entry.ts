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
  'linkOf'?: (string);
  'sparse'?: (boolean);
  'dataExtents'?: (number | string | Long)[];
  'xattrs'?: ({[key: string]: string});
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
  'linkOf': (string);
  'sparse': (boolean);
  'dataExtents': (number)[];
  'xattrs': ({[key: string]: string});
}
