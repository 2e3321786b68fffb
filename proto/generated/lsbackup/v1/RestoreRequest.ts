// Original file: proto/lsbackup.proto


export interface RestoreRequest {
  'target'?: (string);
  'backupId'?: (string);
  'node'?: (string);
  'components'?: (string)[];
  'dryRun'?: (boolean);
  'force'?: (boolean);
  'buildDir'?: (string);
  'options'?: ({[key: string]: string});
  'fromNode'?: (string);
  'identity'?: (string);
  'keyIds'?: (string)[];
}

export interface RestoreRequest__Output {
  'target': (string);
  'backupId': (string);
  'node': (string);
  'components': (string)[];
  'dryRun': (boolean);
  'force': (boolean);
  'buildDir': (string);
  'options': ({[key: string]: string});
  'fromNode': (string);
  'identity': (string);
  'keyIds': (string)[];
}
