// Original file: proto/lsbackup.proto

import type { ComponentResult as _lsbackup_v1_ComponentResult, ComponentResult__Output as _lsbackup_v1_ComponentResult__Output } from '../../lsbackup/v1/ComponentResult';
import type { RunSummary as _lsbackup_v1_RunSummary, RunSummary__Output as _lsbackup_v1_RunSummary__Output } from '../../lsbackup/v1/RunSummary';
import type { Long } from '@grpc/proto-loader';

export interface ProgressEvent {
  'node'?: (string);
  'component'?: (string);
  'phase'?: (string);
  'bytesDone'?: (number | string | Long);
  'bytesTotal'?: (number | string | Long);
  'message'?: (string);
  'result'?: (_lsbackup_v1_ComponentResult | null);
  'summary'?: (_lsbackup_v1_RunSummary | null);
  'backupId'?: (string);
}

export interface ProgressEvent__Output {
  'node': (string);
  'component': (string);
  'phase': (string);
  'bytesDone': (number);
  'bytesTotal': (number);
  'message': (string);
  'result': (_lsbackup_v1_ComponentResult__Output | null);
  'summary': (_lsbackup_v1_RunSummary__Output | null);
  'backupId': (string);
}
