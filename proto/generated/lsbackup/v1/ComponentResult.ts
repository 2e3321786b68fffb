// Original file: proto/lsbackup.proto

import type { Artifact as _lsbackup_v1_Artifact, Artifact__Output as _lsbackup_v1_Artifact__Output } from '../../lsbackup/v1/Artifact';
import type { Entry as _lsbackup_v1_Entry, Entry__Output as _lsbackup_v1_Entry__Output } from '../../lsbackup/v1/Entry';
import type { ExternalData as _lsbackup_v1_ExternalData, ExternalData__Output as _lsbackup_v1_ExternalData__Output } from '../../lsbackup/v1/ExternalData';
import type { Long } from '@grpc/proto-loader';

export interface ComponentResult {
  'node'?: (string);
  'component'?: (string);
  'status'?: (string);
  'reason'?: (string);
  'artifacts'?: (_lsbackup_v1_Artifact)[];
  'entries'?: (_lsbackup_v1_Entry)[];
  'bytes'?: (number | string | Long);
  'durationMs'?: (number | string | Long);
  'meta'?: ({[key: string]: string});
  'external'?: (_lsbackup_v1_ExternalData)[];
}

export interface ComponentResult__Output {
  'node': (string);
  'component': (string);
  'status': (string);
  'reason': (string);
  'artifacts': (_lsbackup_v1_Artifact__Output)[];
  'entries': (_lsbackup_v1_Entry__Output)[];
  'bytes': (number);
  'durationMs': (number);
  'meta': ({[key: string]: string});
  'external': (_lsbackup_v1_ExternalData__Output)[];
}
