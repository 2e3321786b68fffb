// Original file: proto/lsbackup.proto


export interface FilesChunk {
  'entriesJson'?: (string)[];
}

export interface FilesChunk__Output {
  'entriesJson': (string)[];
}
