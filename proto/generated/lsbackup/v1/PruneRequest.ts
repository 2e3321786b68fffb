// Original file: proto/lsbackup.proto


export interface PruneRequest {
  'target'?: (string);
  'keepLast'?: (number);
  'keepDaily'?: (number);
  'keepWeekly'?: (number);
  'keepMonthly'?: (number);
  'dryRun'?: (boolean);
  'incompleteGraceHours'?: (number);
  'removeIds'?: (string)[];
}

export interface PruneRequest__Output {
  'target': (string);
  'keepLast': (number);
  'keepDaily': (number);
  'keepWeekly': (number);
  'keepMonthly': (number);
  'dryRun': (boolean);
  'incompleteGraceHours': (number);
  'removeIds': (string)[];
}
