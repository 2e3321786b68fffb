// Original file: proto/lsbackup.proto


export interface AgentsRequest {
  'buildDir'?: (string);
  'target'?: (string);
}

export interface AgentsRequest__Output {
  'buildDir': (string);
  'target': (string);
}
