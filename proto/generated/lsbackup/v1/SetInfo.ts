// Original file: proto/lsbackup.proto

import type { Long } from '@grpc/proto-loader';

export interface SetInfo {
  'backupId'?: (string);
  'status'?: (string);
  'bytes'?: (number | string | Long);
  'files'?: (number);
  'nodes'?: (string)[];
  'components'?: (string)[];
  'startedAt'?: (string);
  'finishedAt'?: (string);
  'reasons'?: (string)[];
  'newBytes'?: (number | string | Long);
  'format'?: (string);
}

export interface SetInfo__Output {
  'backupId': (string);
  'status': (string);
  'bytes': (number);
  'files': (number);
  'nodes': (string)[];
  'components': (string)[];
  'startedAt': (string);
  'finishedAt': (string);
  'reasons': (string)[];
  'newBytes': (number);
  'format': (string);
}
