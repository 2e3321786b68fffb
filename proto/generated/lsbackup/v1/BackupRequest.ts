// Original file: proto/lsbackup.proto


export interface BackupRequest {
  'buildDir'?: (string);
  'target'?: (string);
  'components'?: (string)[];
  'nodes'?: (string)[];
  'force'?: (boolean);
  'rehash'?: (boolean);
}

export interface BackupRequest__Output {
  'buildDir': (string);
  'target': (string);
  'components': (string)[];
  'nodes': (string)[];
  'force': (boolean);
  'rehash': (boolean);
}
