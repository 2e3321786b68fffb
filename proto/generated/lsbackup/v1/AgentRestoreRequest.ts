// Original file: proto/lsbackup.proto


export interface AgentRestoreRequest {
  'backupId'?: (string);
  'target'?: (string);
  'node'?: (string);
  'components'?: (string)[];
  'dryRun'?: (boolean);
  'force'?: (boolean);
  'options'?: ({[key: string]: string});
  'identity'?: (string);
  'keyIds'?: (string)[];
}

export interface AgentRestoreRequest__Output {
  'backupId': (string);
  'target': (string);
  'node': (string);
  'components': (string)[];
  'dryRun': (boolean);
  'force': (boolean);
  'options': ({[key: string]: string});
  'identity': (string);
  'keyIds': (string)[];
}
