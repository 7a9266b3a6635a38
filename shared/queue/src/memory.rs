//! The in-process bus of the embedded default: the same at-least-once semantics as RabbitMQ
//! (unsettled jobs come back, a delivery limit, a dead-letter list) inside one process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use crate::{decode, encode, BusError, Job, JobBus, JobStream, Received, Settle};

struct Message {
    bytes: Vec<u8>,
    headers: BTreeMap<String, String>,
    deliveries: u32,
}

#[derive(Default)]
struct Queue {
    ready: Mutex<VecDeque<Message>>,
    dead: Mutex<Vec<Message>>,
    notify: Notify,
}

impl Queue {
    fn push_back(&self, m: Message) {
        lock(&self.ready).push_back(m);
        self.notify.notify_one();
    }

    fn push_front(&self, m: Message) {
        lock(&self.ready).push_front(m);
        self.notify.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The queues stay consistent across a panic elsewhere: every operation is one push or pop.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct MemoryBus {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    delivery_limit: u32,
}

impl MemoryBus {
    /// `delivery_limit`: after this many deliveries without an ack, a job goes to the
    /// dead-letter list.
    pub fn new(delivery_limit: u32) -> Self {
        Self {
            queues: Mutex::new(HashMap::new()),
            delivery_limit: delivery_limit.max(1),
        }
    }

    fn queue(&self, route: &str) -> Arc<Queue> {
        lock(&self.queues)
            .entry(route.to_string())
            .or_default()
            .clone()
    }

    /// Publishes raw bytes (tests use it to send poison).
    pub fn publish_raw(&self, route: &str, bytes: Vec<u8>) {
        self.queue(route).push_back(Message {
            bytes,
            headers: BTreeMap::new(),
            deliveries: 0,
        });
    }
}

struct MemorySettle {
    queue: Arc<Queue>,
    message: Option<Message>,
    limit: u32,
}

impl MemorySettle {
    fn give_back(&mut self) {
        if let Some(m) = self.message.take() {
            if m.deliveries >= self.limit {
                lock(&self.queue.dead).push(m);
            } else {
                self.queue.push_front(m);
            }
        }
    }
}

#[async_trait::async_trait]
impl Settle for MemorySettle {
    async fn ack(mut self: Box<Self>) {
        self.message = None;
    }

    async fn requeue(mut self: Box<Self>) {
        self.give_back();
    }

    async fn reject(mut self: Box<Self>) {
        if let Some(m) = self.message.take() {
            lock(&self.queue.dead).push(m);
        }
    }
}

impl Drop for MemorySettle {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[async_trait::async_trait]
impl JobBus for MemoryBus {
    async fn publish(&self, route: &str, jobs: &[Job]) -> Result<(), BusError> {
        let queue = self.queue(route);
        for job in jobs {
            queue.push_back(Message {
                bytes: encode(job),
                headers: job.headers.clone(),
                deliveries: 0,
            });
        }
        Ok(())
    }

    async fn consume(&self, route: &str, prefetch: u16) -> Result<JobStream, BusError> {
        let queue = self.queue(route);
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let limit = self.delivery_limit;
        tokio::spawn(async move {
            loop {
                // Wait for room first, so a job is only taken when it can be handed over.
                let Ok(permit) = tx.reserve().await else {
                    return;
                };
                let message = loop {
                    let notified = queue.notify.notified();
                    if let Some(m) = lock(&queue.ready).pop_front() {
                        break m;
                    }
                    notified.await;
                };
                let mut message = message;
                message.deliveries += 1;
                let job = decode(&message.bytes, message.headers.clone());
                let redelivered = message.deliveries > 1;
                let settle = MemorySettle {
                    queue: queue.clone(),
                    message: Some(message),
                    limit,
                };
                permit.send(Received::new(job, redelivered, Box::new(settle)));
            }
        });
        Ok(rx)
    }

    fn is_ready(&self) -> bool {
        true
    }

    async fn ready(&self, route: &str) -> Result<Option<u64>, BusError> {
        Ok(Some(lock(&self.queue(route).ready).len() as u64))
    }

    fn durable(&self) -> bool {
        false
    }

    async fn dead_letters(&self) -> Result<u64, BusError> {
        let queues: Vec<Arc<Queue>> = lock(&self.queues).values().cloned().collect();
        Ok(queues.iter().map(|q| lock(&q.dead).len() as u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsettled_jobs_come_back_and_poison_dies() {
        let bus = MemoryBus::new(3);
        bus.publish("n", &[Job::new(1), Job::new(2)]).await.unwrap();
        let mut rx = bus.consume("n", 10).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(first.job.as_ref().unwrap().delivery_id, 1);
        drop(first); // a worker died holding it
        let second = rx.recv().await.unwrap();
        second.ack().await;
        let again = rx.recv().await.unwrap();
        assert_eq!(again.job.as_ref().unwrap().delivery_id, 1);
        assert!(again.redelivered);
        again.ack().await;

        bus.publish_raw("n", b"poison".to_vec());
        let poison = rx.recv().await.unwrap();
        assert!(poison.job.is_err());
        poison.reject().await;
        assert_eq!(bus.dead_letters().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn delivery_limit_dead_letters_a_job_that_keeps_coming_back() {
        let bus = MemoryBus::new(2);
        bus.publish("n", &[Job::new(7)]).await.unwrap();
        let mut rx = bus.consume("n", 1).await.unwrap();
        rx.recv().await.unwrap().requeue().await;
        rx.recv().await.unwrap().requeue().await;
        assert_eq!(bus.dead_letters().await.unwrap(), 1);
    }
}
