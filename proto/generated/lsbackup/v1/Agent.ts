// Original file: proto/lsbackup.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AgentBackupRequest as _lsbackup_v1_AgentBackupRequest, AgentBackupRequest__Output as _lsbackup_v1_AgentBackupRequest__Output } from '../../lsbackup/v1/AgentBackupRequest';
import type { AgentCancelRequest as _lsbackup_v1_AgentCancelRequest, AgentCancelRequest__Output as _lsbackup_v1_AgentCancelRequest__Output } from '../../lsbackup/v1/AgentCancelRequest';
import type { AgentReleaseReply as _lsbackup_v1_AgentReleaseReply, AgentReleaseReply__Output as _lsbackup_v1_AgentReleaseReply__Output } from '../../lsbackup/v1/AgentReleaseReply';
import type { AgentReleaseRequest as _lsbackup_v1_AgentReleaseRequest, AgentReleaseRequest__Output as _lsbackup_v1_AgentReleaseRequest__Output } from '../../lsbackup/v1/AgentReleaseRequest';
import type { AgentRestoreRequest as _lsbackup_v1_AgentRestoreRequest, AgentRestoreRequest__Output as _lsbackup_v1_AgentRestoreRequest__Output } from '../../lsbackup/v1/AgentRestoreRequest';
import type { CancelReply as _lsbackup_v1_CancelReply, CancelReply__Output as _lsbackup_v1_CancelReply__Output } from '../../lsbackup/v1/CancelReply';
import type { InfoReply as _lsbackup_v1_InfoReply, InfoReply__Output as _lsbackup_v1_InfoReply__Output } from '../../lsbackup/v1/InfoReply';
import type { InfoRequest as _lsbackup_v1_InfoRequest, InfoRequest__Output as _lsbackup_v1_InfoRequest__Output } from '../../lsbackup/v1/InfoRequest';
import type { ProgressEvent as _lsbackup_v1_ProgressEvent, ProgressEvent__Output as _lsbackup_v1_ProgressEvent__Output } from '../../lsbackup/v1/ProgressEvent';

export interface AgentClient extends grpc.Client {
  Backup(argument: _lsbackup_v1_AgentBackupRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  Backup(argument: _lsbackup_v1_AgentBackupRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  backup(argument: _lsbackup_v1_AgentBackupRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  backup(argument: _lsbackup_v1_AgentBackupRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  
  Cancel(argument: _lsbackup_v1_AgentCancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_AgentCancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_AgentCancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_AgentCancelRequest, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_AgentCancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_AgentCancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_AgentCancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_AgentCancelRequest, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  
  Info(argument: _lsbackup_v1_InfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  Info(argument: _lsbackup_v1_InfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  Info(argument: _lsbackup_v1_InfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  Info(argument: _lsbackup_v1_InfoRequest, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  info(argument: _lsbackup_v1_InfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  info(argument: _lsbackup_v1_InfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  info(argument: _lsbackup_v1_InfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  info(argument: _lsbackup_v1_InfoRequest, callback: grpc.requestCallback<_lsbackup_v1_InfoReply__Output>): grpc.ClientUnaryCall;
  
  Release(argument: _lsbackup_v1_AgentReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _lsbackup_v1_AgentReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _lsbackup_v1_AgentReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _lsbackup_v1_AgentReleaseRequest, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _lsbackup_v1_AgentReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _lsbackup_v1_AgentReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _lsbackup_v1_AgentReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _lsbackup_v1_AgentReleaseRequest, callback: grpc.requestCallback<_lsbackup_v1_AgentReleaseReply__Output>): grpc.ClientUnaryCall;
  
  Restore(argument: _lsbackup_v1_AgentRestoreRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  Restore(argument: _lsbackup_v1_AgentRestoreRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  restore(argument: _lsbackup_v1_AgentRestoreRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  restore(argument: _lsbackup_v1_AgentRestoreRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  
}

export interface AgentHandlers extends grpc.UntypedServiceImplementation {
  Backup: grpc.handleServerStreamingCall<_lsbackup_v1_AgentBackupRequest__Output, _lsbackup_v1_ProgressEvent>;
  
  Cancel: grpc.handleUnaryCall<_lsbackup_v1_AgentCancelRequest__Output, _lsbackup_v1_CancelReply>;
  
  Info: grpc.handleUnaryCall<_lsbackup_v1_InfoRequest__Output, _lsbackup_v1_InfoReply>;
  
  Release: grpc.handleUnaryCall<_lsbackup_v1_AgentReleaseRequest__Output, _lsbackup_v1_AgentReleaseReply>;
  
  Restore: grpc.handleServerStreamingCall<_lsbackup_v1_AgentRestoreRequest__Output, _lsbackup_v1_ProgressEvent>;
  
}

export interface AgentDefinition extends grpc.ServiceDefinition {
  Backup: MethodDefinition<_lsbackup_v1_AgentBackupRequest, _lsbackup_v1_ProgressEvent, _lsbackup_v1_AgentBackupRequest__Output, _lsbackup_v1_ProgressEvent__Output>
  Cancel: MethodDefinition<_lsbackup_v1_AgentCancelRequest, _lsbackup_v1_CancelReply, _lsbackup_v1_AgentCancelRequest__Output, _lsbackup_v1_CancelReply__Output>
  Info: MethodDefinition<_lsbackup_v1_InfoRequest, _lsbackup_v1_InfoReply, _lsbackup_v1_InfoRequest__Output, _lsbackup_v1_InfoReply__Output>
  Release: MethodDefinition<_lsbackup_v1_AgentReleaseRequest, _lsbackup_v1_AgentReleaseReply, _lsbackup_v1_AgentReleaseRequest__Output, _lsbackup_v1_AgentReleaseReply__Output>
  Restore: MethodDefinition<_lsbackup_v1_AgentRestoreRequest, _lsbackup_v1_ProgressEvent, _lsbackup_v1_AgentRestoreRequest__Output, _lsbackup_v1_ProgressEvent__Output>
}
