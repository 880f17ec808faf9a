//! The fetch session planner and the fetch loop's bookkeeping, without sockets.

use super::*;

#[test]
fn a_session_sends_changes_and_forgets_what_is_no_longer_wanted() {
    let mut s = ClientSession::default();
    let wanted: BTreeMap<Tp, i64> = [((0, 0), 0), ((0, 1), 0), ((0, 2), 7)].into();
    let p = s.plan(&wanted, 100);
    assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 3));
    s.answered(42);
    // Partition 1 moved on, 2 is paused (left out), 0 unchanged.
    let wanted: BTreeMap<Tp, i64> = [((0, 0), 0), ((0, 1), 5)].into();
    let p = s.plan(&wanted, 100);
    assert_eq!(
        p,
        Plan {
            session_id: 42,
            epoch: 1,
            send: vec![((0, 1), 5)],
            forget: vec![(0, 2)]
        }
    );
    s.answered(42);
    // Partition 2 back: sent again.
    let wanted: BTreeMap<Tp, i64> = [((0, 0), 0), ((0, 1), 5), ((0, 2), 7)].into();
    let p = s.plan(&wanted, 100);
    assert_eq!(
        (p.epoch, p.send.clone(), p.forget.len()),
        (2, vec![((0, 2), 7)], 0)
    );
    // A reset: full fetch that names the old session (the broker closes it).
    s.reset();
    let p = s.plan(&wanted, 100);
    assert_eq!((p.session_id, p.epoch, p.send.len()), (42, 0, 3));
    // A broker without sessions: always full.
    s.answered(0);
    let p = s.plan(&wanted, 100);
    assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 3));
}
