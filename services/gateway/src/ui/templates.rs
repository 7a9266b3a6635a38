//! The template picker the chat and the campaign form share: the account's approved
//! templates from the catalog, a preview of the body as the patient will read it, and one
//! field per parameter (the script builds the `components` from them). Without a synced
//! catalog it falls back to a name and a language typed by hand.

use maud::{html, Markup};

use crate::core::templates::{self, CatalogParams, TemplateOut};
use crate::error::ApiResult;
use crate::state::AppState;

/// The approved templates of the account a number (default: the default one) belongs to.
pub async fn approved(state: &AppState, from: Option<String>) -> ApiResult<Vec<TemplateOut>> {
    Ok(templates::list(
        state,
        CatalogParams {
            from,
            status: Some("APPROVED".into()),
        },
    )
    .await?
    .templates)
}

/// The picker inside a form; `hint` says when a template is used, `open` shows it at once.
pub fn picker(catalog: &[TemplateOut], summary: &str, open: bool) -> Markup {
    html! {
        details.template open[open] data-template-picker {
            summary { (summary) }
            @if catalog.is_empty() {
                label for="template-name" { "Template name" }
                input #template-name name="template.name" placeholder="appointment_reminder";
                label for="template-language" { "Language code" }
                input #template-language name="template.language" value="en_US";
                label for="template-params" { "Body parameters, one per line" }
                textarea #template-params data-template-lines rows="2" placeholder="{{name}}" {}
                p.hint { "The template list appears here once it is read from WhatsApp (hourly, or a manager's sync)." }
            } @else {
                label for="template-pick" { "Approved template" }
                select #template-pick data-template-pick {
                    option value="" { "None" }
                    @for t in catalog {
                        option value={ (t.name) "|" (t.language) }
                            data-name=(t.name) data-language=(t.language)
                            data-body=(t.body_text) data-header=(t.header_params) data-params=(t.body_params)
                            data-header-format=(t.header_format.as_deref().unwrap_or("TEXT"))
                            data-category=(t.category.to_lowercase()) {
                            (t.name) " (" (t.language) ", " (t.category.to_lowercase()) ")"
                        }
                    }
                }
                div.template-preview data-template-preview hidden {
                    p.label-like { "The patient will read:" }
                    p.bubble data-template-text {}
                }
                div data-template-fields {}
                p.hint { "A parameter may use {{name}}, {{phone}} and {{attributes.KEY}}: each recipient gets their own." }
            }
        }
    }
}
