import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AgentClient as _lsbackup_v1_AgentClient, AgentDefinition as _lsbackup_v1_AgentDefinition } from './lsbackup/v1/Agent';
import type { AgentBackupRequest as _lsbackup_v1_AgentBackupRequest, AgentBackupRequest__Output as _lsbackup_v1_AgentBackupRequest__Output } from './lsbackup/v1/AgentBackupRequest';
import type { AgentCancelRequest as _lsbackup_v1_AgentCancelRequest, AgentCancelRequest__Output as _lsbackup_v1_AgentCancelRequest__Output } from './lsbackup/v1/AgentCancelRequest';
import type { AgentReleaseReply as _lsbackup_v1_AgentReleaseReply, AgentReleaseReply__Output as _lsbackup_v1_AgentReleaseReply__Output } from './lsbackup/v1/AgentReleaseReply';
import type { AgentReleaseRequest as _lsbackup_v1_AgentReleaseRequest, AgentReleaseRequest__Output as _lsbackup_v1_AgentReleaseRequest__Output } from './lsbackup/v1/AgentReleaseRequest';
import type { AgentRestoreRequest as _lsbackup_v1_AgentRestoreRequest, AgentRestoreRequest__Output as _lsbackup_v1_AgentRestoreRequest__Output } from './lsbackup/v1/AgentRestoreRequest';
import type { AgentStatus as _lsbackup_v1_AgentStatus, AgentStatus__Output as _lsbackup_v1_AgentStatus__Output } from './lsbackup/v1/AgentStatus';
import type { AgentsReply as _lsbackup_v1_AgentsReply, AgentsReply__Output as _lsbackup_v1_AgentsReply__Output } from './lsbackup/v1/AgentsReply';
import type { AgentsRequest as _lsbackup_v1_AgentsRequest, AgentsRequest__Output as _lsbackup_v1_AgentsRequest__Output } from './lsbackup/v1/AgentsRequest';
import type { Artifact as _lsbackup_v1_Artifact, Artifact__Output as _lsbackup_v1_Artifact__Output } from './lsbackup/v1/Artifact';
import type { BackupRequest as _lsbackup_v1_BackupRequest, BackupRequest__Output as _lsbackup_v1_BackupRequest__Output } from './lsbackup/v1/BackupRequest';
import type { CancelReply as _lsbackup_v1_CancelReply, CancelReply__Output as _lsbackup_v1_CancelReply__Output } from './lsbackup/v1/CancelReply';
import type { CancelRequest as _lsbackup_v1_CancelRequest, CancelRequest__Output as _lsbackup_v1_CancelRequest__Output } from './lsbackup/v1/CancelRequest';
import type { ComponentEstimate as _lsbackup_v1_ComponentEstimate, ComponentEstimate__Output as _lsbackup_v1_ComponentEstimate__Output } from './lsbackup/v1/ComponentEstimate';
import type { ComponentPlan as _lsbackup_v1_ComponentPlan, ComponentPlan__Output as _lsbackup_v1_ComponentPlan__Output } from './lsbackup/v1/ComponentPlan';
import type { ComponentResult as _lsbackup_v1_ComponentResult, ComponentResult__Output as _lsbackup_v1_ComponentResult__Output } from './lsbackup/v1/ComponentResult';
import type { CoordinatorClient as _lsbackup_v1_CoordinatorClient, CoordinatorDefinition as _lsbackup_v1_CoordinatorDefinition } from './lsbackup/v1/Coordinator';
import type { Detection as _lsbackup_v1_Detection, Detection__Output as _lsbackup_v1_Detection__Output } from './lsbackup/v1/Detection';
import type { ExternalData as _lsbackup_v1_ExternalData, ExternalData__Output as _lsbackup_v1_ExternalData__Output } from './lsbackup/v1/ExternalData';
import type { FilesChunk as _lsbackup_v1_FilesChunk, FilesChunk__Output as _lsbackup_v1_FilesChunk__Output } from './lsbackup/v1/FilesChunk';
import type { FilesRequest as _lsbackup_v1_FilesRequest, FilesRequest__Output as _lsbackup_v1_FilesRequest__Output } from './lsbackup/v1/FilesRequest';
import type { InfoReply as _lsbackup_v1_InfoReply, InfoReply__Output as _lsbackup_v1_InfoReply__Output } from './lsbackup/v1/InfoReply';
import type { InfoRequest as _lsbackup_v1_InfoRequest, InfoRequest__Output as _lsbackup_v1_InfoRequest__Output } from './lsbackup/v1/InfoRequest';
import type { ListReply as _lsbackup_v1_ListReply, ListReply__Output as _lsbackup_v1_ListReply__Output } from './lsbackup/v1/ListReply';
import type { ListRequest as _lsbackup_v1_ListRequest, ListRequest__Output as _lsbackup_v1_ListRequest__Output } from './lsbackup/v1/ListRequest';
import type { PartRecordRef as _lsbackup_v1_PartRecordRef, PartRecordRef__Output as _lsbackup_v1_PartRecordRef__Output } from './lsbackup/v1/PartRecordRef';
import type { ProgressEvent as _lsbackup_v1_ProgressEvent, ProgressEvent__Output as _lsbackup_v1_ProgressEvent__Output } from './lsbackup/v1/ProgressEvent';
import type { PruneReply as _lsbackup_v1_PruneReply, PruneReply__Output as _lsbackup_v1_PruneReply__Output } from './lsbackup/v1/PruneReply';
import type { PruneRequest as _lsbackup_v1_PruneRequest, PruneRequest__Output as _lsbackup_v1_PruneRequest__Output } from './lsbackup/v1/PruneRequest';
import type { RestoreRequest as _lsbackup_v1_RestoreRequest, RestoreRequest__Output as _lsbackup_v1_RestoreRequest__Output } from './lsbackup/v1/RestoreRequest';
import type { RunSummary as _lsbackup_v1_RunSummary, RunSummary__Output as _lsbackup_v1_RunSummary__Output } from './lsbackup/v1/RunSummary';
import type { SetInfo as _lsbackup_v1_SetInfo, SetInfo__Output as _lsbackup_v1_SetInfo__Output } from './lsbackup/v1/SetInfo';
import type { ShowReply as _lsbackup_v1_ShowReply, ShowReply__Output as _lsbackup_v1_ShowReply__Output } from './lsbackup/v1/ShowReply';
import type { ShowRequest as _lsbackup_v1_ShowRequest, ShowRequest__Output as _lsbackup_v1_ShowRequest__Output } from './lsbackup/v1/ShowRequest';
import type { VerifyRequest as _lsbackup_v1_VerifyRequest, VerifyRequest__Output as _lsbackup_v1_VerifyRequest__Output } from './lsbackup/v1/VerifyRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  lsbackup: {
    v1: {
      Agent: SubtypeConstructor<typeof grpc.Client, _lsbackup_v1_AgentClient> & { service: _lsbackup_v1_AgentDefinition }
      AgentBackupRequest: MessageTypeDefinition<_lsbackup_v1_AgentBackupRequest, _lsbackup_v1_AgentBackupRequest__Output>
      AgentCancelRequest: MessageTypeDefinition<_lsbackup_v1_AgentCancelRequest, _lsbackup_v1_AgentCancelRequest__Output>
      AgentReleaseReply: MessageTypeDefinition<_lsbackup_v1_AgentReleaseReply, _lsbackup_v1_AgentReleaseReply__Output>
      AgentReleaseRequest: MessageTypeDefinition<_lsbackup_v1_AgentReleaseRequest, _lsbackup_v1_AgentReleaseRequest__Output>
      AgentRestoreRequest: MessageTypeDefinition<_lsbackup_v1_AgentRestoreRequest, _lsbackup_v1_AgentRestoreRequest__Output>
      AgentStatus: MessageTypeDefinition<_lsbackup_v1_AgentStatus, _lsbackup_v1_AgentStatus__Output>
      AgentsReply: MessageTypeDefinition<_lsbackup_v1_AgentsReply, _lsbackup_v1_AgentsReply__Output>
      AgentsRequest: MessageTypeDefinition<_lsbackup_v1_AgentsRequest, _lsbackup_v1_AgentsRequest__Output>
      Artifact: MessageTypeDefinition<_lsbackup_v1_Artifact, _lsbackup_v1_Artifact__Output>
      BackupRequest: MessageTypeDefinition<_lsbackup_v1_BackupRequest, _lsbackup_v1_BackupRequest__Output>
      CancelReply: MessageTypeDefinition<_lsbackup_v1_CancelReply, _lsbackup_v1_CancelReply__Output>
      CancelRequest: MessageTypeDefinition<_lsbackup_v1_CancelRequest, _lsbackup_v1_CancelRequest__Output>
      ComponentEstimate: MessageTypeDefinition<_lsbackup_v1_ComponentEstimate, _lsbackup_v1_ComponentEstimate__Output>
      ComponentPlan: MessageTypeDefinition<_lsbackup_v1_ComponentPlan, _lsbackup_v1_ComponentPlan__Output>
      ComponentResult: MessageTypeDefinition<_lsbackup_v1_ComponentResult, _lsbackup_v1_ComponentResult__Output>
      Coordinator: SubtypeConstructor<typeof grpc.Client, _lsbackup_v1_CoordinatorClient> & { service: _lsbackup_v1_CoordinatorDefinition }
      Detection: MessageTypeDefinition<_lsbackup_v1_Detection, _lsbackup_v1_Detection__Output>
      ExternalData: MessageTypeDefinition<_lsbackup_v1_ExternalData, _lsbackup_v1_ExternalData__Output>
      FilesChunk: MessageTypeDefinition<_lsbackup_v1_FilesChunk, _lsbackup_v1_FilesChunk__Output>
      FilesRequest: MessageTypeDefinition<_lsbackup_v1_FilesRequest, _lsbackup_v1_FilesRequest__Output>
      InfoReply: MessageTypeDefinition<_lsbackup_v1_InfoReply, _lsbackup_v1_InfoReply__Output>
      InfoRequest: MessageTypeDefinition<_lsbackup_v1_InfoRequest, _lsbackup_v1_InfoRequest__Output>
      ListReply: MessageTypeDefinition<_lsbackup_v1_ListReply, _lsbackup_v1_ListReply__Output>
      ListRequest: MessageTypeDefinition<_lsbackup_v1_ListRequest, _lsbackup_v1_ListRequest__Output>
      PartRecordRef: MessageTypeDefinition<_lsbackup_v1_PartRecordRef, _lsbackup_v1_PartRecordRef__Output>
      ProgressEvent: MessageTypeDefinition<_lsbackup_v1_ProgressEvent, _lsbackup_v1_ProgressEvent__Output>
      PruneReply: MessageTypeDefinition<_lsbackup_v1_PruneReply, _lsbackup_v1_PruneReply__Output>
      PruneRequest: MessageTypeDefinition<_lsbackup_v1_PruneRequest, _lsbackup_v1_PruneRequest__Output>
      RestoreRequest: MessageTypeDefinition<_lsbackup_v1_RestoreRequest, _lsbackup_v1_RestoreRequest__Output>
      RunSummary: MessageTypeDefinition<_lsbackup_v1_RunSummary, _lsbackup_v1_RunSummary__Output>
      SetInfo: MessageTypeDefinition<_lsbackup_v1_SetInfo, _lsbackup_v1_SetInfo__Output>
      ShowReply: MessageTypeDefinition<_lsbackup_v1_ShowReply, _lsbackup_v1_ShowReply__Output>
      ShowRequest: MessageTypeDefinition<_lsbackup_v1_ShowRequest, _lsbackup_v1_ShowRequest__Output>
      VerifyRequest: MessageTypeDefinition<_lsbackup_v1_VerifyRequest, _lsbackup_v1_VerifyRequest__Output>
    }
  }
}

