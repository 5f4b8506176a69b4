//! Closed-loop events do not storm: scale-outs of one network function fold into the first
//! within a cool-down.
//!
//! Monitoring raises a KPI event for every sample above its threshold, so one overloaded
//! SMF can send dozens of them a minute, each a different event (its own `event_id`, so
//! not a duplicate by key), each read by the rules as "scale out by one". Without a
//! cool-down each would be applied, and the operator would scale the function out once
//! per sample. Here the first scale-out of a (namespace, network function) claims that
//! target for [`Cooldown`]'s period (`EVENT_COOLDOWN`, default 5 minutes; 0 turns it off);
//! later events for it within the period are not applied: they end as `duplicate`, whose
//! `original` names the intent and the source of the scale-out they folded into.
//!
//! Only network events whose intent scales out are folded; service requests never are.
//! A claim is made when the first event is about to be applied and kept only if the
//! apply succeeds: a failed (or fenced) first event releases it, so the next event is
//! applied. Events that arrive while the first one is still being applied fold into it,
//! and are not retried if that apply then fails; monitoring raises the KPI again if the
//! load persists.
//!
//! The state is per worker process and in memory: with several replicas, events of one
//! function that arrive on partitions owned by different replicas fold per replica (up
//! to one scale-out per replica per period), and a restarted worker starts with no
//! claims. It is bounded: at [`DEFAULT_MAX_TARGETS`] targets, expired claims are dropped
//! first, then the oldest claim, so at worst a target whose claim was dropped gets one
//! more scale-out within its period (counted in `event_cooldown_evictions_total`);
//! memory never grows past the bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::intent::{Component, NetworkIntent};
use crate::message::SourceRef;
use crate::outcome::{IntentRef, Original, Stage};
use crate::request::Request;

/// Targets (namespace, network functions) with a claim at once; at the bound the oldest
/// claim is dropped.
pub const DEFAULT_MAX_TARGETS: usize = 10_000;

/// What a closed-loop scale-out is about: the functions it scales, in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    namespace: Box<str>,
    components: Box<[Component]>,
}

/// The first scale-out of a target within the period.
#[derive(Debug, Clone)]
struct Claim {
    at: Instant,
    intent: IntentRef,
    source: SourceRef,
    /// Kept: its apply succeeded (until then a failed apply releases it).
    kept: bool,
}

/// The cool-down state of a worker, shared by its messages in flight.
#[derive(Debug)]
pub struct Cooldown {
    period: Duration,
    max_targets: usize,
    claims: Mutex<HashMap<Target, Claim>>,
}

impl Default for Cooldown {
    /// Off: every event is applied.
    fn default() -> Self {
        Self::new(Duration::ZERO, DEFAULT_MAX_TARGETS)
    }
}

/// The right to apply a target's first scale-out in its period. Dropped without
/// [`Ticket::applied`] (the apply failed, or the message was fenced), it releases the
/// claim so that the next event is applied.
#[derive(Debug)]
pub struct Ticket<'a> {
    claim: Option<(&'a Cooldown, Target, SourceRef)>,
}

impl Ticket<'_> {
    /// The scale-out was applied: the claim holds for the rest of the period.
    pub fn applied(mut self) {
        if let Some((cooldown, target, source)) = self.claim.take() {
            if let Some(claim) = cooldown.lock().get_mut(&target) {
                if claim.source == source {
                    claim.kept = true;
                }
            }
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some((cooldown, target, source)) = self.claim.take() {
            let mut claims = cooldown.lock();
            // Only its own claim, and only one its apply has not confirmed.
            if claims
                .get(&target)
                .is_some_and(|c| c.source == source && !c.kept)
            {
                claims.remove(&target);
            }
        }
    }
}

impl Cooldown {
    /// A cool-down of `period` (zero: off) over at most `max_targets` targets.
    pub fn new(period: Duration, max_targets: usize) -> Self {
        Self {
            period,
            max_targets: max_targets.max(1),
            claims: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Target, Claim>> {
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides whether `intent`, translated from `request` (the message at `source`), is
    /// applied: `Ok` with the ticket to confirm its apply with, or `Err` with the
    /// scale-out it folds into.
    pub fn claim(
        &self,
        request: &Request,
        intent: &NetworkIntent,
        source: &SourceRef,
    ) -> Result<Ticket<'_>, Original> {
        self.claim_at(request, intent, source, Instant::now())
    }

    fn claim_at(
        &self,
        request: &Request,
        intent: &NetworkIntent,
        source: &SourceRef,
        now: Instant,
    ) -> Result<Ticket<'_>, Original> {
        let free = Ticket { claim: None };
        if self.period.is_zero() || !is_closed_loop_scale_out(request, intent) {
            return Ok(free);
        }
        let mut components = intent.spec.target_components.clone();
        components.sort_unstable();
        components.dedup();
        let target = Target {
            namespace: intent.namespace().into(),
            components: components.into(),
        };
        let mut claims = self.lock();
        if let Some(claim) = claims.get(&target) {
            let live = now.saturating_duration_since(claim.at) < self.period;
            if live && claim.source == *source {
                // The claimant itself again (taken over after a hand-over): applied
                // again (idempotent), its claim left as it is.
                return Ok(free);
            }
            if live {
                let names: Vec<&str> = target.components.iter().map(|c| c.as_str()).collect();
                let component = names.join(",");
                crate::meters::events_folded(component.clone()).increment(1);
                info!(
                    namespace = %target.namespace, component = %component,
                    topic = %source.topic, partition = source.partition, offset = source.offset,
                    into_intent = %claim.intent.name,
                    into_topic = %claim.source.topic, into_partition = claim.source.partition,
                    into_offset = claim.source.offset,
                    cooldown = ?self.period,
                    "closed-loop event folded into an earlier scale-out of the same network function"
                );
                return Err(Original {
                    stage: Stage::Applied,
                    intent: Some(claim.intent.clone()),
                    source: claim.source.clone(),
                });
            }
        }
        if !claims.contains_key(&target) && claims.len() >= self.max_targets {
            self.make_room(&mut claims, now);
        }
        claims.insert(
            target.clone(),
            Claim {
                at: now,
                intent: IntentRef {
                    name: intent.name().to_string(),
                    namespace: intent.namespace().to_string(),
                },
                source: source.clone(),
                kept: false,
            },
        );
        drop(claims);
        Ok(Ticket {
            claim: Some((self, target, source.clone())),
        })
    }

    /// At the bound: drops expired claims, then (if none was) the oldest one.
    fn make_room(&self, claims: &mut HashMap<Target, Claim>, now: Instant) {
        claims.retain(|_, c| now.saturating_duration_since(c.at) < self.period);
        if claims.len() < self.max_targets {
            return;
        }
        let oldest = claims
            .iter()
            .min_by_key(|(_, c)| c.at)
            .map(|(t, _)| t.clone());
        if let Some(oldest) = oldest {
            claims.remove(&oldest);
            crate::meters::event_cooldown_evictions().increment(1);
        }
    }

    /// Targets with a claim (expired ones included until room is made): for tests.
    pub fn claims(&self) -> usize {
        self.lock().len()
    }
}

/// A network event whose intent scales a function out: what monitoring repeats.
fn is_closed_loop_scale_out(request: &Request, intent: &NetworkIntent) -> bool {
    matches!(request, Request::Event(_))
        && intent
            .spec
            .scaling
            .as_ref()
            .and_then(|s| s.scale_by)
            .is_some_and(|by| by > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{IntentType, NetworkIntentSpec, Priority, Scaling};
    use crate::request::{NetworkEvent, ServiceRequest};
    use std::collections::BTreeMap;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn event() -> Request {
        let event: NetworkEvent =
            serde_json::from_str(r#"{"event_type":"kpi_threshold_crossed"}"#).unwrap();
        Request::Event(event)
    }

    fn scale_out(key: &str, namespace: &str, component: Component) -> NetworkIntent {
        NetworkIntent::for_key(
            key,
            NetworkIntentSpec {
                intent: "Scale out".into(),
                intent_type: IntentType::Scaling,
                priority: Priority::High,
                target_components: vec![component],
                target_namespace: namespace.into(),
                target_environment: None,
                scaling: Some(Scaling {
                    scale_by: Some(1),
                    max_replicas: Some(10),
                    ..Scaling::default()
                }),
                resources: None,
                network_slice: None,
                parameters: BTreeMap::new(),
            },
        )
    }

    fn at(offset: i64) -> SourceRef {
        SourceRef {
            topic: "network-events".into(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn later_scale_outs_of_one_function_fold_into_the_first_within_the_period() {
        let cooldown = Cooldown::new(FIVE_MINUTES, 100);
        let t0 = Instant::now();
        let first = scale_out("ev-1", "core5g", Component::Smf);
        cooldown
            .claim_at(&event(), &first, &at(1), t0)
            .unwrap()
            .applied();
        for (i, later) in (2..6).enumerate() {
            let now = t0 + Duration::from_secs(60 * i as u64);
            let intent = scale_out(&format!("ev-{later}"), "core5g", Component::Smf);
            let original = cooldown
                .claim_at(&event(), &intent, &at(later), now)
                .unwrap_err();
            assert_eq!(original.source, at(1));
            assert_eq!(original.intent.unwrap().name, first.name());
        }
        // another function, or another namespace, is another target
        for other in [
            scale_out("ev-7", "core5g", Component::Amf),
            scale_out("ev-8", "edge", Component::Smf),
        ] {
            assert!(cooldown.claim_at(&event(), &other, &at(7), t0).is_ok());
        }
        // after the period, the next one is applied and claims anew
        let late = scale_out("ev-9", "core5g", Component::Smf);
        let after = t0 + FIVE_MINUTES;
        cooldown
            .claim_at(&event(), &late, &at(9), after)
            .unwrap()
            .applied();
        let folded = cooldown
            .claim_at(&event(), &first, &at(10), after)
            .unwrap_err();
        assert_eq!(folded.source, at(9));
    }

    #[test]
    fn a_failed_first_apply_releases_the_claim_and_the_same_message_is_not_its_own_fold() {
        let cooldown = Cooldown::new(FIVE_MINUTES, 100);
        let t0 = Instant::now();
        let intent = scale_out("ev-1", "core5g", Component::Upf);
        let ticket = cooldown.claim_at(&event(), &intent, &at(1), t0).unwrap();
        // while it is being applied, another event folds into it
        assert!(cooldown.claim_at(&event(), &intent, &at(2), t0).is_err());
        drop(ticket); // the apply failed
        assert_eq!(cooldown.claims(), 0);
        let ticket = cooldown.claim_at(&event(), &intent, &at(3), t0).unwrap();
        ticket.applied();
        // the message that holds the claim, processed again, is applied again, and its
        // claim stays
        assert!(cooldown.claim_at(&event(), &intent, &at(3), t0).is_ok());
        assert!(cooldown.claim_at(&event(), &intent, &at(4), t0).is_err());
    }

    #[test]
    fn service_requests_and_a_zero_period_never_fold() {
        let request = Request::Service(ServiceRequest::new("Scale out the SMF"));
        let intent = scale_out("r-1", "core5g", Component::Smf);
        let cooldown = Cooldown::new(FIVE_MINUTES, 100);
        for offset in 0..3 {
            cooldown
                .claim_at(&request, &intent, &at(offset), Instant::now())
                .unwrap()
                .applied();
        }
        let off = Cooldown::default();
        for offset in 0..3 {
            off.claim_at(&event(), &intent, &at(offset), Instant::now())
                .unwrap()
                .applied();
        }
        assert_eq!(cooldown.claims() + off.claims(), 0);
    }

    #[test]
    fn the_bound_drops_expired_claims_then_the_oldest() {
        let cooldown = Cooldown::new(FIVE_MINUTES, 3);
        let t0 = Instant::now();
        let target = |ns: &str| scale_out(ns, ns, Component::Nrf);
        for (i, ns) in ["a", "b", "c"].into_iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64);
            cooldown
                .claim_at(&event(), &target(ns), &at(i as i64), now)
                .unwrap()
                .applied();
        }
        // full: "a" (the oldest) goes
        let now = t0 + Duration::from_secs(10);
        cooldown
            .claim_at(&event(), &target("d"), &at(3), now)
            .unwrap()
            .applied();
        assert_eq!(cooldown.claims(), 3);
        assert!(cooldown
            .claim_at(&event(), &target("a"), &at(4), now)
            .is_ok());
        assert!(cooldown
            .claim_at(&event(), &target("c"), &at(5), now)
            .is_err());
        // past the period, expired claims make room before any live one goes
        let later = t0 + FIVE_MINUTES + Duration::from_secs(5);
        cooldown
            .claim_at(&event(), &target("e"), &at(6), later)
            .unwrap()
            .applied();
        assert!(cooldown.claims() <= 3);
    }
}
