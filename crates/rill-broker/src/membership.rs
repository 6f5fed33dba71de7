//! The group membership requests: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, answered
//! by the coordinator (`crate::coordinator`). A JoinGroup or SyncGroup that must wait for the
//! rest of the group holds its connection until the rebalance step completes (as Kafka does:
//! a connection's requests are answered in order), or until the broker stops.

use crate::broker::Broker;
use crate::coordinator::group::{Join, Reply};
use crate::protocol::error_code as code;
use crate::protocol::membership::{
    self, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest, SyncGroupResponse,
};
use bytes::BytesMut;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Who sent a request: what the coordinator records of a member.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub id: &'a str,
    pub host: IpAddr,
}

/// Waits for a rebalance step's answer, or the broker's shutdown (then `on_stop`: the client
/// finds the coordinator again and rejoins).
async fn wait<T>(reply: Reply<T>, stop: &watch::Receiver<bool>, on_stop: impl FnOnce() -> T) -> T {
    let rx = match reply {
        Reply::Now(answer) => return answer,
        Reply::Wait(rx) => rx,
    };
    let mut stop = stop.clone();
    tokio::select! {
        answer = rx => answer.unwrap_or_else(|_| on_stop()),
        _ = stop.wait_for(|stopped| *stopped) => on_stop(),
    }
}

fn timeout_ms(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Broker {
    /// JoinGroup: the member's place in the next generation.
    pub async fn join_group(
        &self,
        version: i16,
        request: JoinGroupRequest,
        client: Client<'_>,
        stop: &watch::Receiver<bool>,
        buf: &mut BytesMut,
    ) {
        let group_id = request.group_id;
        let member_id = request.member_id.clone();
        let join = Join {
            member_id: request.member_id,
            instance_id: request.group_instance_id,
            client_id: client.id.to_owned(),
            client_host: format!("/{}", client.host),
            session_timeout: timeout_ms(request.session_timeout_ms),
            rebalance_timeout: timeout_ms(request.rebalance_timeout_ms),
            protocol_type: request.protocol_type,
            protocols: request.protocols,
            require_known_member_id: version >= 4,
        };
        let reply = self.coordinator.join(&group_id, join);
        let response = wait(reply, stop, || {
            JoinGroupResponse::error(code::COORDINATOR_NOT_AVAILABLE, &member_id)
        })
        .await;
        if response.error == code::NONE {
            tracing::debug!(
                group = %group_id,
                member = %response.member_id,
                generation = response.generation_id,
                leader = response.member_id == response.leader,
                "member joined"
            );
        }
        membership::join_group_response(buf, version, &response);
    }

    /// SyncGroup: the member's assignment, once the leader has sent them.
    pub async fn sync_group(
        &self,
        version: i16,
        request: SyncGroupRequest,
        stop: &watch::Receiver<bool>,
        buf: &mut BytesMut,
    ) {
        let reply = self.coordinator.sync(
            &request.group_id,
            (&request.member_id, request.group_instance_id.as_deref()),
            request.generation_id,
            (
                request.protocol_type.as_deref(),
                request.protocol_name.as_deref(),
            ),
            request.assignments,
        );
        let response = wait(reply, stop, || {
            SyncGroupResponse::error(code::COORDINATOR_NOT_AVAILABLE)
        })
        .await;
        membership::sync_group_response(buf, version, &response);
    }

    pub fn heartbeat(&self, version: i16, request: &HeartbeatRequest, buf: &mut BytesMut) {
        let error = self.coordinator.heartbeat(
            &request.group_id,
            (&request.member_id, request.group_instance_id.as_deref()),
            request.generation_id,
        );
        membership::heartbeat_response(buf, version, error);
    }

    /// LeaveGroup: each member leaves; before v3 (one member) its error is the request's.
    pub fn leave_group(&self, version: i16, request: &LeaveGroupRequest, buf: &mut BytesMut) {
        let results: Vec<(String, Option<String>, i16)> = request
            .members
            .iter()
            .map(|(member_id, instance)| {
                let error = self
                    .coordinator
                    .leave(&request.group_id, (member_id, instance.as_deref()));
                (member_id.clone(), instance.clone(), error)
            })
            .collect();
        let error = if version >= 3 {
            code::NONE
        } else {
            results.first().map_or(code::NONE, |r| r.2)
        };
        membership::leave_group_response(buf, version, error, &results);
    }
}
