//! Fan-out: an occurrence becomes one delivery per recipient (see `heydoc_store::fanout` for
//! how: chunks, cursor, lease, skipped deliveries for opted-out contacts). This module only
//! hands the scheduler's settings to it.

use heydoc_store::fanout::{self, Fanout, Leased};

use crate::{SchedulerContext, SchedulerError};

fn of(ctx: &SchedulerContext) -> Fanout {
    Fanout {
        db: ctx.db.clone(),
        chunk: ctx.settings.fanout_chunk,
        lease_secs: ctx.settings.fanout_lease_secs,
        business_number: ctx.business_number.clone(),
        skip_us_marketing: ctx.settings.skip_us_marketing,
    }
}

/// Takes one occurrence whose fan-out lease is free and expands it to the end (or until its
/// schedule is paused). Returns false when there was nothing to take.
pub async fn fan_out_one(ctx: &SchedulerContext) -> Result<bool, SchedulerError> {
    Ok(fanout::fan_out_one(&of(ctx)).await?)
}

/// Expands a leased occurrence to the end (or until its schedule is paused).
pub async fn expand(ctx: &SchedulerContext, leased: Leased) -> Result<(), SchedulerError> {
    Ok(fanout::expand(&of(ctx), leased).await?)
}

/// Leases one occurrence being fanned out whose lease has expired (or was never taken).
pub async fn lease(ctx: &SchedulerContext) -> Result<Option<Leased>, SchedulerError> {
    Ok(fanout::lease(&of(ctx)).await?)
}
