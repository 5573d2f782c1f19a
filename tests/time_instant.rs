//! `gopark::time::Instant` follows the runtime's clock, paused or not, and
//! every deadline API takes it; `Interval`'s three `MissedTickBehavior`s
//! schedule as tokio documents them, checked on a paused clock where
//! every instant is exact.

use std::time::Duration;

use gopark::time::{self, Instant, MissedTickBehavior};

#[gopark::test(start_paused = true)]
async fn instant_follows_the_paused_clock() {
    let start = Instant::now();
    let real = std::time::Instant::now();
    time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    assert_eq!(Instant::now() - start, Duration::from_secs(3600));
    assert_eq!(
        Instant::now().duration_since(start),
        Duration::from_secs(3600)
    );
    // The real clock barely moved.
    assert!(real.elapsed() < Duration::from_secs(60));
    time::advance(Duration::from_millis(1500)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(3_601_500));
}

#[gopark::test(start_paused = true)]
async fn arithmetic_and_conversions() {
    let a = Instant::now();
    let b = a + Duration::from_secs(2);
    assert_eq!(b - a, Duration::from_secs(2));
    // Like std, an earlier minus a later saturates at zero.
    assert_eq!(a - b, Duration::ZERO);
    assert_eq!(a.checked_duration_since(b), None);
    assert_eq!(b.checked_duration_since(a), Some(Duration::from_secs(2)));
    assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    assert_eq!(b.checked_sub(Duration::from_secs(2)), Some(a));
    let mut c = a;
    c += Duration::from_millis(5);
    c -= Duration::from_millis(2);
    assert_eq!(c - a, Duration::from_millis(3));
    assert!(a < b && b > c);
    // To and from std's, losslessly.
    let std: std::time::Instant = b.into();
    assert_eq!(Instant::from(std), b);
    assert_eq!(Instant::from_std(b.into_std()), b);
}

#[gopark::test(start_paused = true)]
async fn every_deadline_api_takes_it() {
    let start = Instant::now();
    time::sleep_until(start + Duration::from_secs(10)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));

    let r = time::timeout_at(
        Instant::now() + Duration::from_secs(5),
        std::future::pending::<()>(),
    )
    .await;
    assert!(r.is_err());
    assert_eq!(start.elapsed(), Duration::from_secs(15));

    // std's instants still work, on the same clock.
    time::sleep_until(start.into_std() + Duration::from_secs(20)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(20));

    let mut sleep = Box::pin(time::sleep(Duration::from_secs(1)));
    assert_eq!(sleep.deadline(), Instant::now() + Duration::from_secs(1));
    sleep
        .as_mut()
        .reset(Instant::now() + Duration::from_secs(7));
    sleep.await;
    assert_eq!(start.elapsed(), Duration::from_secs(27));

    let mut ticks = time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(2),
    );
    assert_eq!(ticks.tick().await - start, Duration::from_secs(28));
    assert_eq!(ticks.tick().await - start, Duration::from_secs(30));
}

/// Ticks of a 10 ms interval whose consumer takes the tick due at 10 ms
/// only at 35 ms; returns when the following four ticks were due,
/// relative to the start, in ms.
async fn schedule(behavior: MissedTickBehavior) -> Vec<u128> {
    let start = Instant::now();
    let mut ticks = time::interval(Duration::from_millis(10));
    ticks.set_missed_tick_behavior(behavior);
    assert_eq!(ticks.missed_tick_behavior(), behavior);
    assert_eq!(ticks.tick().await, start);
    time::advance(Duration::from_millis(35)).await;
    assert_eq!(ticks.tick().await - start, Duration::from_millis(10));
    let mut due = Vec::new();
    for _ in 0..4 {
        due.push((ticks.tick().await - start).as_millis());
    }
    due
}

#[gopark::test(start_paused = true)]
async fn burst_is_the_default_and_catches_up() {
    assert_eq!(
        time::interval(Duration::from_secs(1)).missed_tick_behavior(),
        MissedTickBehavior::Burst
    );
    assert_eq!(schedule(MissedTickBehavior::Burst).await, [20, 30, 40, 50]);
}

#[gopark::test(start_paused = true)]
async fn delay_restarts_the_schedule_from_the_late_tick() {
    assert_eq!(schedule(MissedTickBehavior::Delay).await, [45, 55, 65, 75]);
}

#[gopark::test(start_paused = true)]
async fn skip_drops_the_missed_ticks() {
    assert_eq!(schedule(MissedTickBehavior::Skip).await, [40, 50, 60, 70]);
}

#[gopark::test(start_paused = true)]
async fn skip_after_a_day_of_missed_ticks_does_not_overflow() {
    // 8.64e9 missed periods: more than u32::MAX.
    let start = Instant::now();
    let mut ticks = time::interval(Duration::from_micros(10));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticks.tick().await;
    time::advance(Duration::from_secs(86_400)).await;
    ticks.tick().await;
    let next = ticks.tick().await - start;
    assert_eq!(
        next,
        Duration::from_secs(86_400) + Duration::from_micros(10)
    );
}

#[gopark::test(start_paused = true)]
async fn resets() {
    let start = Instant::now();
    let mut ticks = time::interval(Duration::from_secs(10));
    ticks.tick().await;
    ticks.reset();
    assert_eq!(ticks.tick().await - start, Duration::from_secs(10));
    ticks.reset_after(Duration::from_secs(3));
    assert_eq!(ticks.tick().await - start, Duration::from_secs(13));
    ticks.reset_immediately();
    assert_eq!(ticks.tick().await - start, Duration::from_secs(13));
    ticks.reset_at(start + Duration::from_secs(100));
    assert_eq!(ticks.tick().await - start, Duration::from_secs(100));
}
