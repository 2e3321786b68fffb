// Original file: proto/lsbackup.proto

import type { Artifact as _lsbackup_v1_Artifact, Artifact__Output as _lsbackup_v1_Artifact__Output } from '../../lsbackup/v1/Artifact';
import type { ExternalData as _lsbackup_v1_ExternalData, ExternalData__Output as _lsbackup_v1_ExternalData__Output } from '../../lsbackup/v1/ExternalData';
import type { PartRecordRef as _lsbackup_v1_PartRecordRef, PartRecordRef__Output as _lsbackup_v1_PartRecordRef__Output } from '../../lsbackup/v1/PartRecordRef';
import type { Long } from '@grpc/proto-loader';

export interface ComponentResult {
  'node'?: (string);
  'component'?: (string);
  'status'?: (string);
  'reason'?: (string);
  'artifacts'?: (_lsbackup_v1_Artifact)[];
  'bytes'?: (number | string | Long);
  'durationMs'?: (number | string | Long);
  'meta'?: ({[key: string]: string});
  'external'?: (_lsbackup_v1_ExternalData)[];
  'record'?: (_lsbackup_v1_PartRecordRef | null);
  'entryCount'?: (number | string | Long);
}

export interface ComponentResult__Output {
  'node': (string);
  'component': (string);
  'status': (string);
  'reason': (string);
  'artifacts': (_lsbackup_v1_Artifact__Output)[];
  'bytes': (number);
  'durationMs': (number);
  'meta': ({[key: string]: string});
  'external': (_lsbackup_v1_ExternalData__Output)[];
  'record': (_lsbackup_v1_PartRecordRef__Output | null);
  'entryCount': (number);
}
