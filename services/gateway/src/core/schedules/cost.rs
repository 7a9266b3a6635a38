//! What a campaign costs: per run, what Meta reported it charges for (each status webhook's
//! `pricing`), priced with the configured per-country rates; and before it starts, what it
//! will likely cost and whether its audience fits the account's messaging limit.

use std::collections::BTreeMap;

use heydoc_domain::schedule::Audience;
use heydoc_store::occurrences;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::tags::ensure_exist;
use crate::core::templates::TemplateSpec;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One pricing category's messages in a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryCost {
    /// Meta's pricing category: `marketing`, `utility`, `authentication`, `service`, ...
    pub category: String,
    /// Messages Meta reported a price for.
    pub messages: i64,
    /// Of those, the ones Meta charges for (`billable`).
    pub billable: i64,
    /// `billable` priced at the configured rates.
    pub estimated_cost: f64,
}

/// A run's cost so far.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct RunCost {
    pub currency: String,
    pub by_category: Vec<CategoryCost>,
    pub estimated_total: f64,
}

/// The cost of each of these runs, by occurrence id.
pub async fn of_runs(state: &AppState, ids: &[i64]) -> ApiResult<BTreeMap<i64, RunCost>> {
    let pricing = &state.settings.pricing;
    let mut out: BTreeMap<i64, BTreeMap<String, CategoryCost>> = BTreeMap::new();
    for group in occurrences::pricing_counts(&state.db, ids).await? {
        let (category, n) = (group.category, group.messages);
        let entry = out
            .entry(group.occurrence_id)
            .or_default()
            .entry(category.clone())
            .or_insert_with(|| CategoryCost {
                category: category.clone(),
                messages: 0,
                billable: 0,
                estimated_cost: 0.0,
            });
        entry.messages += n;
        if group.billable {
            entry.billable += n;
            entry.estimated_cost += n as f64 * pricing.rate(&group.prefix, &category);
        }
    }
    Ok(out
        .into_iter()
        .map(|(occ, by)| {
            let by_category: Vec<CategoryCost> = by.into_values().collect();
            let total = by_category.iter().map(|c| c.estimated_cost).sum::<f64>();
            (
                occ,
                RunCost {
                    currency: pricing.currency.clone(),
                    by_category,
                    estimated_total: round(total),
                },
            )
        })
        .collect())
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EstimateRequest {
    /// Phone numbers, country code first.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Every contact carrying one of these tags (as the campaign would resolve it now).
    #[serde(default)]
    pub tag_ids: Vec<i32>,
    /// The template it sends (its category decides the price); without one, free text.
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// The business number it sends from (default: the default number).
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateOut {
    /// Recipients it would reach now.
    pub audience: i64,
    /// Left out: opted out of campaigns.
    pub opted_out: i64,
    /// Left out: WhatsApp will not deliver to them.
    pub suppressed: i64,
    /// Left out: US (+1) recipients of a marketing template, which Meta refuses
    /// (`HEYDOC_SCHEDULER__SKIP_US_MARKETING`).
    pub us_marketing_skipped: i64,
    /// The pricing category assumed: the template's in the catalog (`marketing` when the
    /// template is not in a synced catalog), `service` (free) for free text.
    pub category: String,
    pub currency: String,
    /// Every reachable recipient charged at the configured rates for their country (utility
    /// messages to a contact inside the 24-hour window are free, so this is an upper bound).
    pub estimated_cost: f64,
    /// The account's messaging limit as Meta last reported it (`TIER_250` ... `TIER_UNLIMITED`).
    pub messaging_limit: Option<String>,
    /// The limit in unique recipients per rolling 24 hours; null when unlimited or unknown.
    pub limit: Option<i64>,
    /// Whether the audience is larger than the limit: Meta refuses the rest for 24 hours.
    pub exceeds_limit: bool,
    /// What to look at before starting, in words.
    pub warnings: Vec<String>,
}

/// `TIER_2K` -> 2,000; unlimited or unknown -> None.
fn tier_size(tier: &str) -> Option<i64> {
    let t = tier.trim().to_ascii_uppercase();
    let n = t.strip_prefix("TIER_")?;
    if let Some(k) = n.strip_suffix('K') {
        return k.parse::<i64>().ok().map(|k| k * 1_000);
    }
    n.parse().ok()
}

pub async fn estimate(state: &AppState, body: EstimateRequest) -> ApiResult<EstimateOut> {
    let audience = Audience::check(&body.recipients, body.tag_ids.clone())?;
    ensure_exist(&state.db, &audience.tag_ids).await?;
    let from = body
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    if let Some(f) = from {
        crate::core::numbers::usable(state, f).await?;
    }
    let summary =
        heydoc_store::audience::summary(&state.db, &audience.tag_ids, &audience.recipients).await?;
    let mut warnings = Vec::new();
    let category = match &body.template {
        None => "service".to_string(),
        Some(t) => {
            t.check_name()?;
            let waba = crate::core::templates::waba_of(state, from).await?;
            match heydoc_store::templates::find(&state.db, &waba, t.name.trim(), t.language.trim())
                .await?
            {
                Some(found) => found.category.to_ascii_lowercase(),
                None => {
                    warnings.push(format!(
                        "the template {:?} is not in the synced catalog: priced as marketing",
                        t.name
                    ));
                    "marketing".to_string()
                }
            }
        }
    };
    let pricing = &state.settings.pricing;
    let skip_us = category == "marketing" && state.settings.scheduler.skip_us_marketing;
    let us_marketing_skipped: i64 = if skip_us {
        summary.by_prefix.iter().map(|(_, _, us)| us).sum()
    } else {
        0
    };
    let mut summary = summary;
    summary.reachable -= us_marketing_skipped;
    if us_marketing_skipped > 0 {
        warnings.push(format!(
            "{us_marketing_skipped} US (+1) recipients will be skipped: Meta does not deliver marketing templates to them"
        ));
    }
    let cost: f64 = summary
        .by_prefix
        .iter()
        .map(|(prefix, n, us)| {
            let charged = if skip_us { n - us } else { *n };
            charged as f64 * pricing.rate(prefix, &category)
        })
        .sum();
    let number_id = from.unwrap_or(state.business_number());
    let number = heydoc_store::numbers::find(&state.db, number_id).await?;
    let messaging_limit = number.and_then(|n| n.messaging_limit);
    let limit = messaging_limit.as_deref().and_then(tier_size);
    let exceeds_limit = category != "service" && limit.is_some_and(|l| summary.reachable > l);
    if exceeds_limit {
        warnings.push(format!(
            "{} recipients is more than the account's messaging limit of {} people a day: Meta refuses the rest; spread the campaign over days (daily_limit)",
            summary.reachable,
            limit.unwrap_or_default()
        ));
    }
    if summary.opted_out + summary.suppressed > 0 {
        warnings.push(format!(
            "{} opted out and {} suppressed contacts will be skipped",
            summary.opted_out, summary.suppressed
        ));
    }
    if summary.reachable == 0 {
        return Err(ApiError::validation(
            "nobody in this audience can be sent to (all opted out or suppressed)",
        ));
    }
    Ok(EstimateOut {
        audience: summary.reachable,
        opted_out: summary.opted_out,
        suppressed: summary.suppressed,
        us_marketing_skipped,
        category,
        currency: pricing.currency.clone(),
        estimated_cost: round(cost),
        messaging_limit,
        limit,
        exceeds_limit,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::tier_size;

    #[test]
    fn reads_meta_tiers() {
        assert_eq!(tier_size("TIER_250"), Some(250));
        assert_eq!(tier_size("TIER_2K"), Some(2_000));
        assert_eq!(tier_size("tier_100k"), Some(100_000));
        assert_eq!(tier_size("TIER_UNLIMITED"), None);
    }
}
