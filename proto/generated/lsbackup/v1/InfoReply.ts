// Original file: proto/lsbackup.proto

import type { ComponentEstimate as _lsbackup_v1_ComponentEstimate, ComponentEstimate__Output as _lsbackup_v1_ComponentEstimate__Output } from '../../lsbackup/v1/ComponentEstimate';
import type { Detection as _lsbackup_v1_Detection, Detection__Output as _lsbackup_v1_Detection__Output } from '../../lsbackup/v1/Detection';
import type { Long } from '@grpc/proto-loader';

export interface InfoReply {
  'node'?: (string);
  'version'?: (string);
  'components'?: (string)[];
  'freeBytes'?: (number | string | Long);
  'estimates'?: (_lsbackup_v1_ComponentEstimate)[];
  'targetError'?: (string);
  'detections'?: (_lsbackup_v1_Detection)[];
}

export interface InfoReply__Output {
  'node': (string);
  'version': (string);
  'components': (string)[];
  'freeBytes': (number);
  'estimates': (_lsbackup_v1_ComponentEstimate__Output)[];
  'targetError': (string);
  'detections': (_lsbackup_v1_Detection__Output)[];
}
