#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
use super::*;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

fn rules(delay_ms: u64) -> Rules {
    Rules {
        initial_rebalance_delay: Duration::from_millis(delay_ms),
        max_group_size: 4,
    }
}

fn join_of(member_id: &str, protocols: &[&str]) -> Join {
    Join {
        member_id: member_id.to_owned(),
        instance_id: None,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".to_owned(),
        protocols: protocols
            .iter()
            .map(|name| ProtocolMetadata {
                name: (*name).to_owned(),
                metadata: format!("{member_id}:{name}").into_bytes(),
            })
            .collect(),
        require_known_member_id: true,
    }
}

/// Test ids: m1, m2, ... in order.
struct Ids(u32);

impl Ids {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("m{}", self.0)
    }
}

fn now_answer<T: std::fmt::Debug>(reply: Reply<T>) -> T {
    match reply {
        Reply::Now(answer) => answer,
        Reply::Wait(_) => panic!("expected an answer now"),
    }
}

fn waiting<T: std::fmt::Debug>(reply: Reply<T>) -> oneshot::Receiver<T> {
    match reply {
        Reply::Wait(rx) => rx,
        Reply::Now(answer) => panic!("expected to wait, got {answer:?}"),
    }
}

fn answered<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().unwrap()
}

/// A new member through KIP-394: MEMBER_ID_REQUIRED with its id, then the join with it.
fn join_new(
    group: &mut Group,
    ids: &mut Ids,
    rules: &Rules,
    now: Instant,
) -> (String, Reply<JoinGroupResponse>) {
    let first = now_answer(group.join(join_of("", &["range"]), || ids.next(), rules, now));
    assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
    let id = first.member_id;
    let reply = group.join(join_of(&id, &["range"]), || ids.next(), rules, now);
    (id, reply)
}

/// Two members in a stable generation 2: m1 leads.
fn stable_pair(group: &mut Group, ids: &mut Ids, rules: &Rules, now: Instant) {
    let (m1, reply) = join_new(group, ids, rules, now);
    let joined = answered(&mut waiting(reply));
    assert_eq!((joined.generation_id, joined.leader.as_str()), (1, "m1"));
    let (m2, reply) = join_new(group, ids, rules, now);
    let mut m2_join = waiting(reply);
    assert_eq!(group.state(), State::PreparingRebalance);
    assert_eq!(
        group.heartbeat(&m1, None, 1, now),
        code::REBALANCE_IN_PROGRESS
    );
    let mut m1_join = waiting(group.join(join_of(&m1, &["range"]), || ids.next(), rules, now));
    let leader_view = answered(&mut m1_join);
    let follower_view = answered(&mut m2_join);
    assert_eq!(leader_view.generation_id, 2);
    assert_eq!(leader_view.members.len(), 2, "the leader sees every member");
    assert_eq!(leader_view.members[1].2, b"m2:range");
    assert!(follower_view.members.is_empty());
    assert_eq!(follower_view.leader, "m1");
    let mut m2_sync = waiting(group.sync(&m2, None, 2, (None, None), vec![], now));
    assert!(m2_sync.try_recv().is_err(), "followers wait for the leader");
    let assignments = vec![("m1".into(), b"a1".to_vec()), ("m2".into(), b"a2".to_vec())];
    let mut m1_sync = waiting(group.sync(&m1, None, 2, (None, None), assignments, now));
    assert_eq!(answered(&mut m1_sync).assignment, b"a1");
    assert_eq!(answered(&mut m2_sync).assignment, b"a2");
    assert_eq!(group.state(), State::Stable);
}

#[test]
fn members_join_sync_and_rebalance_when_one_joins() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    stable_pair(&mut group, &mut ids, &rules, now);
    assert_eq!(group.heartbeat("m2", None, 2, now), code::NONE);
    assert_eq!(
        group.heartbeat("m2", None, 1, now),
        code::ILLEGAL_GENERATION
    );
    assert_eq!(
        group.heartbeat("nobody", None, 2, now),
        code::UNKNOWN_MEMBER_ID
    );
    let described = group.describe("g");
    assert_eq!((described.state, described.members.len()), ("Stable", 2));
    assert_eq!(described.members[1].assignment, b"a2");
}

#[test]
fn a_leaving_member_starts_a_rebalance_and_the_last_one_empties_the_group() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    stable_pair(&mut group, &mut ids, &rules, now);
    assert_eq!(group.leave("m1", None, &rules, now), code::NONE);
    assert_eq!(group.state(), State::PreparingRebalance);
    assert_eq!(
        group.heartbeat("m2", None, 2, now),
        code::REBALANCE_IN_PROGRESS
    );
    let mut rejoin = waiting(group.join(join_of("m2", &["range"]), || ids.next(), &rules, now));
    let joined = answered(&mut rejoin);
    assert_eq!((joined.generation_id, joined.leader.as_str()), (3, "m2"));
    // The last member leaving ends the rebalance at once: nobody is left to wait for.
    assert_eq!(group.leave("m2", None, &rules, now), code::NONE);
    assert_eq!(group.state(), State::Empty);
    assert!(group.is_idle());
    assert_eq!(
        group.leave("m2", None, &rules, now),
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_silent_member_expires_after_its_session_and_waiting_members_do_not() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    stable_pair(&mut group, &mut ids, &rules, now);
    let later = now + Duration::from_millis(9_999);
    assert_eq!(group.heartbeat("m1", None, 2, later), code::NONE);
    assert!(group.tick(&rules, later).is_empty());
    // m2 never heartbeat: gone at its deadline; m1 is told to rejoin.
    assert_eq!(group.tick(&rules, now + SESSION), vec!["m2".to_owned()]);
    assert_eq!(group.state(), State::PreparingRebalance);
    // A member waiting in JoinGroup is kept past its session; the silent m1 is not.
    let at = now + SESSION;
    let (m3, reply) = join_new(&mut group, &mut ids, &rules, at);
    let mut m3_join = waiting(reply);
    assert_eq!(group.tick(&rules, at + SESSION * 2), vec!["m1".to_owned()]);
    let joined = answered(&mut m3_join);
    assert_eq!((joined.generation_id, joined.leader), (3, m3));
}

#[test]
fn a_leader_that_never_syncs_is_removed_at_the_rebalance_timeout() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    let (_m1, reply) = join_new(&mut group, &mut ids, &rules, now);
    answered(&mut waiting(reply));
    let (m2, reply) = join_new(&mut group, &mut ids, &rules, now);
    let mut m2_join = waiting(reply);
    let mut m1_join = waiting(group.join(join_of("m1", &["range"]), || ids.next(), &rules, now));
    answered(&mut m1_join);
    answered(&mut m2_join);
    let mut m2_sync = waiting(group.sync(&m2, None, 2, (None, None), vec![], now));
    let removed = group.tick(&rules, now + REBALANCE);
    assert_eq!(removed, vec!["m1".to_owned()]);
    assert_eq!(answered(&mut m2_sync).error, code::REBALANCE_IN_PROGRESS);
    assert_eq!(group.state(), State::PreparingRebalance);
}

#[test]
fn offsets_commit_only_in_the_current_generation() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    assert_eq!(group.check_commit("", None, -1, now), Ok(()));
    stable_pair(&mut group, &mut ids, &rules, now);
    assert_eq!(group.check_commit("m1", None, 2, now), Ok(()));
    assert_eq!(
        group.check_commit("m1", None, 1, now),
        Err(code::ILLEGAL_GENERATION)
    );
    assert_eq!(
        group.check_commit("", None, -1, now),
        Err(code::UNKNOWN_MEMBER_ID),
        "a group with members takes no commits from outside it"
    );
    // Between the join and the sync of a rebalance, commits wait for the new generation.
    let (_m3, reply) = join_new(&mut group, &mut ids, &rules, now);
    let _m3_join = waiting(reply);
    assert_eq!(group.check_commit("m1", None, 2, now), Ok(()));
    let _m1_join = waiting(group.join(join_of("m1", &["range"]), || ids.next(), &rules, now));
    let _m2_join = waiting(group.join(join_of("m2", &["range"]), || ids.next(), &rules, now));
    assert_eq!(group.state(), State::CompletingRebalance);
    assert_eq!(
        group.check_commit("m1", None, 3, now),
        Err(code::REBALANCE_IN_PROGRESS)
    );
}

#[test]
fn members_must_share_a_protocol_and_the_group_is_bounded() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    stable_pair(&mut group, &mut ids, &rules, now);
    let other = now_answer(group.join(join_of("", &["roundrobin"]), || ids.next(), &rules, now));
    assert_eq!(other.error, code::INCONSISTENT_GROUP_PROTOCOL);
    let mut wrong_type = join_of("", &["range"]);
    wrong_type.protocol_type = "connect".into();
    let refused = now_answer(group.join(wrong_type, || ids.next(), &rules, now));
    assert_eq!(refused.error, code::INCONSISTENT_GROUP_PROTOCOL);
    // Two members plus two awaiting their ids fill a group of four.
    for _ in 0..2 {
        let first = now_answer(group.join(join_of("", &["range"]), || ids.next(), &rules, now));
        assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
    }
    let full = now_answer(group.join(join_of("", &["range"]), || ids.next(), &rules, now));
    assert_eq!(full.error, code::GROUP_MAX_SIZE_REACHED);
    // Ids handed out and never used lapse with their session.
    group.tick(&rules, now + SESSION);
    let first = now_answer(group.join(join_of("", &["range"]), || ids.next(), &rules, now));
    assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
}

#[test]
fn the_protocol_most_members_prefer_is_chosen() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    let mut first = join_of("", &["range", "roundrobin"]);
    first.require_known_member_id = false;
    let mut m1 = waiting(group.join(first, || ids.next(), &rules, now));
    assert_eq!(
        answered(&mut m1).protocol_name.as_deref(),
        Some("range"),
        "a lone member's first choice"
    );
    let mut second = join_of("", &["roundrobin", "range"]);
    second.require_known_member_id = false;
    let mut m2 = waiting(group.join(second, || ids.next(), &rules, now));
    let mut third = join_of("", &["roundrobin"]);
    third.require_known_member_id = false;
    let mut m3 = waiting(group.join(third, || ids.next(), &rules, now));
    let mut m1 = waiting(group.join(
        join_of("m1", &["range", "roundrobin"]),
        || ids.next(),
        &rules,
        now,
    ));
    for rx in [&mut m1, &mut m2, &mut m3] {
        assert_eq!(answered(rx).protocol_name.as_deref(), Some("roundrobin"));
    }
}

#[test]
fn the_first_rebalance_waits_the_initial_delay() {
    let (rules, now, mut ids) = (rules(3000), Instant::now(), Ids(0));
    let mut group = Group::new();
    let (_m1, reply) = join_new(&mut group, &mut ids, &rules, now);
    let mut m1 = waiting(reply);
    group.tick(&rules, now + Duration::from_secs(1));
    assert!(m1.try_recv().is_err(), "still inside the delay");
    let (_m2, reply) = join_new(&mut group, &mut ids, &rules, now + Duration::from_secs(1));
    let mut m2 = waiting(reply);
    group.tick(&rules, now + Duration::from_millis(3500));
    assert!(
        m1.try_recv().is_err(),
        "the delay restarted with the second join"
    );
    group.tick(&rules, now + Duration::from_secs(4));
    assert_eq!(answered(&mut m1).members.len(), 2);
    assert_eq!(answered(&mut m2).generation_id, 1);
}

#[test]
fn a_static_member_rejoins_without_a_rebalance() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    let mut join = join_of("", &["range"]);
    join.instance_id = Some("host-1".into());
    let mut first = waiting(group.join(join.clone(), || ids.next(), &rules, now));
    let joined = answered(&mut first);
    let mut sync = waiting(group.sync(
        &joined.member_id,
        Some("host-1"),
        1,
        (Some("consumer"), Some("range")),
        vec![(joined.member_id.clone(), b"a".to_vec())],
        now,
    ));
    assert_eq!(answered(&mut sync).assignment, b"a");
    // Restarted with the same instance id: a new member id, same generation, same assignment.
    let again = now_answer(group.join(join, || ids.next(), &rules, now));
    assert_eq!((again.error, again.generation_id), (code::NONE, 1));
    assert_ne!(again.member_id, joined.member_id);
    assert_eq!(group.state(), State::Stable);
    let kept = now_answer(group.sync(&again.member_id, None, 1, (None, None), vec![], now));
    assert_eq!(kept.assignment, b"a");
    // The old member id is fenced.
    assert_eq!(
        group.heartbeat(&joined.member_id, Some("host-1"), 1, now),
        code::FENCED_INSTANCE_ID
    );
}

#[test]
fn a_stored_generation_comes_back_without_a_rebalance_and_an_emptied_group_is_deleted() {
    let (rules, now, mut ids) = (rules(0), Instant::now(), Ids(0));
    let mut group = Group::new();
    let (_m1, reply) = join_new(&mut group, &mut ids, &rules, now);
    answered(&mut waiting(reply));
    assert_eq!(
        group.take_change(),
        None,
        "nothing stored before a stable generation"
    );
    stable_pair_again(&mut group, &mut ids, &rules, now);
    let Some(Change::Stable(snapshot)) = group.take_change() else {
        panic!("a stable generation is stored")
    };
    assert_eq!((snapshot.generation, snapshot.members.len()), (2, 2));
    let decoded = crate::coordinator::snapshot::GroupSnapshot::decode(&snapshot.encode());
    let mut restored = Group::restore(decoded.unwrap(), now);
    assert_eq!(restored.state(), State::Stable);
    assert_eq!(restored.heartbeat("m2", None, 2, now), code::NONE);
    assert_eq!(restored.check_commit("m1", None, 2, now), Ok(()));
    let kept = now_answer(restored.sync("m2", None, 2, (None, None), vec![], now));
    assert_eq!(kept.assignment, b"a2");
    // Both leave: the stored generation is deleted.
    assert_eq!(restored.leave("m1", None, &rules, now), code::NONE);
    assert_eq!(restored.leave("m2", None, &rules, now), code::NONE);
    assert_eq!(restored.take_change(), Some(Change::Emptied));
    assert_eq!(restored.take_change(), None);
}

/// `stable_pair` after its first member is already in generation 1.
fn stable_pair_again(group: &mut Group, ids: &mut Ids, rules: &Rules, now: Instant) {
    let (m2, reply) = join_new(group, ids, rules, now);
    let mut m2_join = waiting(reply);
    let mut m1_join = waiting(group.join(join_of("m1", &["range"]), || ids.next(), rules, now));
    answered(&mut m1_join);
    answered(&mut m2_join);
    let mut m2_sync = waiting(group.sync(&m2, None, 2, (None, None), vec![], now));
    let assignments = vec![("m1".into(), b"a1".to_vec()), ("m2".into(), b"a2".to_vec())];
    let mut m1_sync = waiting(group.sync("m1", None, 2, (None, None), assignments, now));
    answered(&mut m1_sync);
    answered(&mut m2_sync);
}
