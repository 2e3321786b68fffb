// Original file: proto/lsbackup.proto


export interface ExternalData {
  'key'?: (string);
  'what'?: (string);
  'byHand'?: (string);
}

export interface ExternalData__Output {
  'key': (string);
  'what': (string);
  'byHand': (string);
}
