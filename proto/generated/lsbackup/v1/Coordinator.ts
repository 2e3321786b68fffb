// Original file: proto/lsbackup.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AgentsReply as _lsbackup_v1_AgentsReply, AgentsReply__Output as _lsbackup_v1_AgentsReply__Output } from '../../lsbackup/v1/AgentsReply';
import type { AgentsRequest as _lsbackup_v1_AgentsRequest, AgentsRequest__Output as _lsbackup_v1_AgentsRequest__Output } from '../../lsbackup/v1/AgentsRequest';
import type { BackupRequest as _lsbackup_v1_BackupRequest, BackupRequest__Output as _lsbackup_v1_BackupRequest__Output } from '../../lsbackup/v1/BackupRequest';
import type { CancelReply as _lsbackup_v1_CancelReply, CancelReply__Output as _lsbackup_v1_CancelReply__Output } from '../../lsbackup/v1/CancelReply';
import type { CancelRequest as _lsbackup_v1_CancelRequest, CancelRequest__Output as _lsbackup_v1_CancelRequest__Output } from '../../lsbackup/v1/CancelRequest';
import type { FilesChunk as _lsbackup_v1_FilesChunk, FilesChunk__Output as _lsbackup_v1_FilesChunk__Output } from '../../lsbackup/v1/FilesChunk';
import type { FilesRequest as _lsbackup_v1_FilesRequest, FilesRequest__Output as _lsbackup_v1_FilesRequest__Output } from '../../lsbackup/v1/FilesRequest';
import type { ListReply as _lsbackup_v1_ListReply, ListReply__Output as _lsbackup_v1_ListReply__Output } from '../../lsbackup/v1/ListReply';
import type { ListRequest as _lsbackup_v1_ListRequest, ListRequest__Output as _lsbackup_v1_ListRequest__Output } from '../../lsbackup/v1/ListRequest';
import type { ProgressEvent as _lsbackup_v1_ProgressEvent, ProgressEvent__Output as _lsbackup_v1_ProgressEvent__Output } from '../../lsbackup/v1/ProgressEvent';
import type { PruneReply as _lsbackup_v1_PruneReply, PruneReply__Output as _lsbackup_v1_PruneReply__Output } from '../../lsbackup/v1/PruneReply';
import type { PruneRequest as _lsbackup_v1_PruneRequest, PruneRequest__Output as _lsbackup_v1_PruneRequest__Output } from '../../lsbackup/v1/PruneRequest';
import type { RestoreRequest as _lsbackup_v1_RestoreRequest, RestoreRequest__Output as _lsbackup_v1_RestoreRequest__Output } from '../../lsbackup/v1/RestoreRequest';
import type { ShowReply as _lsbackup_v1_ShowReply, ShowReply__Output as _lsbackup_v1_ShowReply__Output } from '../../lsbackup/v1/ShowReply';
import type { ShowRequest as _lsbackup_v1_ShowRequest, ShowRequest__Output as _lsbackup_v1_ShowRequest__Output } from '../../lsbackup/v1/ShowRequest';
import type { VerifyRequest as _lsbackup_v1_VerifyRequest, VerifyRequest__Output as _lsbackup_v1_VerifyRequest__Output } from '../../lsbackup/v1/VerifyRequest';

export interface CoordinatorClient extends grpc.Client {
  Agents(argument: _lsbackup_v1_AgentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  Agents(argument: _lsbackup_v1_AgentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  Agents(argument: _lsbackup_v1_AgentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  Agents(argument: _lsbackup_v1_AgentsRequest, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  agents(argument: _lsbackup_v1_AgentsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  agents(argument: _lsbackup_v1_AgentsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  agents(argument: _lsbackup_v1_AgentsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  agents(argument: _lsbackup_v1_AgentsRequest, callback: grpc.requestCallback<_lsbackup_v1_AgentsReply__Output>): grpc.ClientUnaryCall;
  
  Backup(argument: _lsbackup_v1_BackupRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  Backup(argument: _lsbackup_v1_BackupRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  backup(argument: _lsbackup_v1_BackupRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  backup(argument: _lsbackup_v1_BackupRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  
  Cancel(argument: _lsbackup_v1_CancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_CancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_CancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _lsbackup_v1_CancelRequest, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_CancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_CancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_CancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  cancel(argument: _lsbackup_v1_CancelRequest, callback: grpc.requestCallback<_lsbackup_v1_CancelReply__Output>): grpc.ClientUnaryCall;
  
  Files(argument: _lsbackup_v1_FilesRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_FilesChunk__Output>;
  Files(argument: _lsbackup_v1_FilesRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_FilesChunk__Output>;
  files(argument: _lsbackup_v1_FilesRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_FilesChunk__Output>;
  files(argument: _lsbackup_v1_FilesRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_FilesChunk__Output>;
  
  List(argument: _lsbackup_v1_ListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  List(argument: _lsbackup_v1_ListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  List(argument: _lsbackup_v1_ListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  List(argument: _lsbackup_v1_ListRequest, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  list(argument: _lsbackup_v1_ListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  list(argument: _lsbackup_v1_ListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  list(argument: _lsbackup_v1_ListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  list(argument: _lsbackup_v1_ListRequest, callback: grpc.requestCallback<_lsbackup_v1_ListReply__Output>): grpc.ClientUnaryCall;
  
  Prune(argument: _lsbackup_v1_PruneRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  Prune(argument: _lsbackup_v1_PruneRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  Prune(argument: _lsbackup_v1_PruneRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  Prune(argument: _lsbackup_v1_PruneRequest, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  prune(argument: _lsbackup_v1_PruneRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  prune(argument: _lsbackup_v1_PruneRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  prune(argument: _lsbackup_v1_PruneRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  prune(argument: _lsbackup_v1_PruneRequest, callback: grpc.requestCallback<_lsbackup_v1_PruneReply__Output>): grpc.ClientUnaryCall;
  
  Restore(argument: _lsbackup_v1_RestoreRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  Restore(argument: _lsbackup_v1_RestoreRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  restore(argument: _lsbackup_v1_RestoreRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  restore(argument: _lsbackup_v1_RestoreRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  
  Show(argument: _lsbackup_v1_ShowRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  Show(argument: _lsbackup_v1_ShowRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  Show(argument: _lsbackup_v1_ShowRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  Show(argument: _lsbackup_v1_ShowRequest, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  show(argument: _lsbackup_v1_ShowRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  show(argument: _lsbackup_v1_ShowRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  show(argument: _lsbackup_v1_ShowRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  show(argument: _lsbackup_v1_ShowRequest, callback: grpc.requestCallback<_lsbackup_v1_ShowReply__Output>): grpc.ClientUnaryCall;
  
  Verify(argument: _lsbackup_v1_VerifyRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  Verify(argument: _lsbackup_v1_VerifyRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  verify(argument: _lsbackup_v1_VerifyRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  verify(argument: _lsbackup_v1_VerifyRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_lsbackup_v1_ProgressEvent__Output>;
  
}

export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  Agents: grpc.handleUnaryCall<_lsbackup_v1_AgentsRequest__Output, _lsbackup_v1_AgentsReply>;
  
  Backup: grpc.handleServerStreamingCall<_lsbackup_v1_BackupRequest__Output, _lsbackup_v1_ProgressEvent>;
  
  Cancel: grpc.handleUnaryCall<_lsbackup_v1_CancelRequest__Output, _lsbackup_v1_CancelReply>;
  
  Files: grpc.handleServerStreamingCall<_lsbackup_v1_FilesRequest__Output, _lsbackup_v1_FilesChunk>;
  
  List: grpc.handleUnaryCall<_lsbackup_v1_ListRequest__Output, _lsbackup_v1_ListReply>;
  
  Prune: grpc.handleUnaryCall<_lsbackup_v1_PruneRequest__Output, _lsbackup_v1_PruneReply>;
  
  Restore: grpc.handleServerStreamingCall<_lsbackup_v1_RestoreRequest__Output, _lsbackup_v1_ProgressEvent>;
  
  Show: grpc.handleUnaryCall<_lsbackup_v1_ShowRequest__Output, _lsbackup_v1_ShowReply>;
  
  Verify: grpc.handleServerStreamingCall<_lsbackup_v1_VerifyRequest__Output, _lsbackup_v1_ProgressEvent>;
  
}

export interface CoordinatorDefinition extends grpc.ServiceDefinition {
  Agents: MethodDefinition<_lsbackup_v1_AgentsRequest, _lsbackup_v1_AgentsReply, _lsbackup_v1_AgentsRequest__Output, _lsbackup_v1_AgentsReply__Output>
  Backup: MethodDefinition<_lsbackup_v1_BackupRequest, _lsbackup_v1_ProgressEvent, _lsbackup_v1_BackupRequest__Output, _lsbackup_v1_ProgressEvent__Output>
  Cancel: MethodDefinition<_lsbackup_v1_CancelRequest, _lsbackup_v1_CancelReply, _lsbackup_v1_CancelRequest__Output, _lsbackup_v1_CancelReply__Output>
  Files: MethodDefinition<_lsbackup_v1_FilesRequest, _lsbackup_v1_FilesChunk, _lsbackup_v1_FilesRequest__Output, _lsbackup_v1_FilesChunk__Output>
  List: MethodDefinition<_lsbackup_v1_ListRequest, _lsbackup_v1_ListReply, _lsbackup_v1_ListRequest__Output, _lsbackup_v1_ListReply__Output>
  Prune: MethodDefinition<_lsbackup_v1_PruneRequest, _lsbackup_v1_PruneReply, _lsbackup_v1_PruneRequest__Output, _lsbackup_v1_PruneReply__Output>
  Restore: MethodDefinition<_lsbackup_v1_RestoreRequest, _lsbackup_v1_ProgressEvent, _lsbackup_v1_RestoreRequest__Output, _lsbackup_v1_ProgressEvent__Output>
  Show: MethodDefinition<_lsbackup_v1_ShowRequest, _lsbackup_v1_ShowReply, _lsbackup_v1_ShowRequest__Output, _lsbackup_v1_ShowReply__Output>
  Verify: MethodDefinition<_lsbackup_v1_VerifyRequest, _lsbackup_v1_ProgressEvent, _lsbackup_v1_VerifyRequest__Output, _lsbackup_v1_ProgressEvent__Output>
}
