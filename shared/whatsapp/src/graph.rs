//! The Graph API calls that are not sends: the template catalog of a business account, read
//! receipts and the typing indicator, and media (its short-lived URL, then the file). One
//! pooled client for every number; each call takes the token of the number it acts for.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::client::graph_url;
use crate::error::{ErrorClass, SendError};
use crate::payload::ErrorResponse;
use crate::templates::{TemplateInfo, TemplatePage};

/// At most this many pages of templates are read (Meta's pages hold up to 100 here).
const MAX_TEMPLATE_PAGES: usize = 200;

#[derive(Clone)]
pub struct GraphApi {
    http: reqwest::Client,
    /// For media files: no limit on the whole transfer, only on silence between reads.
    downloads: reqwest::Client,
    base_url: String,
    version: String,
}

/// What `GET /{MEDIA-ID}` answers: where to fetch the file for the next few minutes.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaInfo {
    pub url: String,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub file_size: Option<u64>,
}

/// What `GET /{PHONE-NUMBER-ID}` answers about the number itself.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NumberInfo {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `NA`.
    #[serde(default)]
    pub quality_rating: Option<String>,
    /// `TIER_250` ... `TIER_UNLIMITED`.
    #[serde(default)]
    pub messaging_limit_tier: Option<String>,
    #[serde(default)]
    pub throughput: Option<Throughput>,
}

/// The number's throughput level (`STANDARD`, `HIGH`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Throughput {
    #[serde(default)]
    pub level: Option<String>,
}

/// A media file being downloaded, a piece at a time.
pub struct Download {
    response: reqwest::Response,
    max_bytes: u64,
    read: u64,
}

impl Download {
    /// The next piece of the file, `None` at its end; an error past `max_bytes`.
    pub async fn next_chunk(&mut self) -> Result<Option<axum::body::Bytes>, SendError> {
        let chunk = self.response.chunk().await.map_err(transport)?;
        if let Some(c) = &chunk {
            self.read += c.len() as u64;
            if self.read > self.max_bytes {
                return Err(self.too_big());
            }
        }
        Ok(chunk)
    }

    fn too_big(&self) -> SendError {
        SendError::new(
            ErrorClass::NeverRetry { suppress: false },
            Some(131053),
            format!("the file is larger than {} bytes", self.max_bytes),
        )
    }
}

fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

impl GraphApi {
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        let downloads = reqwest::Client::builder()
            .read_timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            // The token goes with the request: never to a host Meta did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            downloads,
            base_url: base_url.to_string(),
            version: version.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        graph_url(&self.base_url, &self.version, path)
    }

    /// Every template of the business account, following `paging.next` to the last page.
    pub async fn list_templates(
        &self,
        waba_id: &str,
        token: &SecretString,
    ) -> Result<Vec<TemplateInfo>, SendError> {
        let first = format!(
            "{}?limit=100&fields=id,name,language,status,category,quality_score,components",
            self.url(&format!("{waba_id}/message_templates"))
        );
        let mut url = Some(first);
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(next) = url.take() {
            pages += 1;
            if pages > MAX_TEMPLATE_PAGES {
                return Err(SendError::new(
                    ErrorClass::NeverRetry { suppress: false },
                    None,
                    format!("more than {MAX_TEMPLATE_PAGES} pages of templates"),
                ));
            }
            let body = self.get(&next, token).await?;
            let page: TemplatePage = serde_json::from_slice(&body).map_err(|e| {
                SendError::new(
                    ErrorClass::RetrySoon,
                    None,
                    format!("unreadable template list: {e}"),
                )
            })?;
            let got = page.data.len();
            all.extend(page.data);
            url = page
                .paging
                .and_then(|p| p.next)
                .filter(|n| got > 0 && self.same_origin(n))
                .map(|n| without_token(&n));
        }
        Ok(all)
    }

    /// Marks an inbound message read; with `typing`, WhatsApp also shows the user that the
    /// business is typing (up to 25 s or until the reply).
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        wamid: &str,
        typing: bool,
        token: &SecretString,
    ) -> Result<(), SendError> {
        let mut body =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        let url = self.url(&format!("{phone_number_id}/messages"));
        let response = self
            .http
            .post(&url)
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        answer(response).await.map(|_| ())
    }

    /// Uploads a file for `phone_number_id` to send (`POST /{phone-number-id}/media`);
    /// answers Meta's media id.
    pub async fn upload_media(
        &self,
        phone_number_id: &str,
        bytes: Vec<u8>,
        mime_type: &str,
        filename: &str,
        token: &SecretString,
    ) -> Result<String, SendError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_string())
            .mime_str(mime_type)
            .map_err(|e| {
                SendError::new(
                    ErrorClass::NeverRetry { suppress: false },
                    Some(131053),
                    format!("the file's type {mime_type:?}: {}", e.without_url()),
                )
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_string())
            .part("file", part);
        let response = self
            .downloads
            .post(self.url(&format!("{phone_number_id}/media")))
            .bearer_auth(token.expose_secret())
            .multipart(form)
            .send()
            .await
            .map_err(transport)?;
        let body = answer(response).await?;
        #[derive(Deserialize)]
        struct Uploaded {
            id: String,
        }
        serde_json::from_slice::<Uploaded>(&body)
            .map(|u| u.id)
            .map_err(|e| {
                SendError::new(
                    ErrorClass::RetrySoon,
                    None,
                    format!("unreadable upload answer: {e}"),
                )
            })
    }

    /// The number's own fields as Meta has them: display number, verified name, quality,
    /// messaging limit tier and throughput.
    pub async fn number_info(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<NumberInfo, SendError> {
        let url = format!(
            "{}?fields=display_phone_number,verified_name,quality_rating,messaging_limit_tier,throughput",
            self.url(phone_number_id)
        );
        let body = self.get(&url, token).await?;
        serde_json::from_slice(&body).map_err(|e| {
            SendError::new(
                ErrorClass::RetrySoon,
                None,
                format!("unreadable phone number answer: {e}"),
            )
        })
    }

    /// Where media `id` can be downloaded (for about five minutes) and what it should be.
    pub async fn media_info(
        &self,
        media_id: &str,
        token: &SecretString,
    ) -> Result<MediaInfo, SendError> {
        let body = self.get(&self.url(media_id), token).await?;
        serde_json::from_slice(&body).map_err(|e| {
            SendError::new(
                ErrorClass::RetrySoon,
                None,
                format!("unreadable media answer: {e}"),
            )
        })
    }

    /// The file at a media URL (it needs the token too), read a piece at a time so that it
    /// never has to be held whole; refused past `max_bytes`.
    pub async fn download(
        &self,
        url: &str,
        token: &SecretString,
        max_bytes: u64,
    ) -> Result<Download, SendError> {
        if !self.media_host(url) {
            return Err(SendError::new(
                ErrorClass::NeverRetry { suppress: false },
                Some(131053),
                "the media URL is not on a WhatsApp host; the token is not sent there",
            ));
        }
        let response = self
            .downloads
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        if !response.status().is_success() {
            // Not a success: always Meta's error (or the HTTP status), classified.
            return Err(match answer(response).await {
                Err(e) => e,
                Ok(_) => SendError::new(ErrorClass::RetrySoon, None, "the media download failed"),
            });
        }
        let download = Download {
            response,
            max_bytes,
            read: 0,
        };
        if download
            .response
            .content_length()
            .is_some_and(|n| n > max_bytes)
        {
            return Err(download.too_big());
        }
        Ok(download)
    }
    async fn get(&self, url: &str, token: &SecretString) -> Result<Vec<u8>, SendError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        answer(response).await
    }

    /// Media URLs the token may go to: Meta's own (https on a Facebook or WhatsApp host), or
    /// the configured base's origin (the sandbox).
    fn media_host(&self, url: &str) -> bool {
        if self.same_origin(url) {
            return true;
        }
        reqwest::Url::parse(url).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str().is_some_and(|h| {
                    ["fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net"]
                        .iter()
                        .any(|d| h == *d || h.ends_with(&format!(".{d}")))
                })
        })
    }

    /// `paging.next` is followed only to the host the client was configured with: the token
    /// rides along.
    fn same_origin(&self, url: &str) -> bool {
        let origin = |u: &str| {
            reqwest::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_string),
                    u.port_or_known_default(),
                )
            })
        };
        origin(url).is_some() && origin(url) == origin(&self.base_url)
    }
}

/// A transport error, without its URL (Meta's URLs may carry a token).
fn transport(e: reqwest::Error) -> SendError {
    SendError::new(
        ErrorClass::RetrySoon,
        None,
        format!("could not reach the Graph API: {}", e.without_url()),
    )
}

/// A URL without an `access_token` query parameter (the bearer header carries the token).
fn without_token(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// The body of a success, or Meta's error classified as a send's would be.
async fn answer(response: reqwest::Response) -> Result<Vec<u8>, SendError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return Ok(bytes.to_vec());
    }
    Err(match serde_json::from_slice::<ErrorResponse>(&bytes) {
        Ok(ErrorResponse { error }) => SendError::new(
            ErrorClass::from_code(error.code),
            Some(error.code),
            format!("({}) {}", error.code, error.message),
        ),
        Err(_) if status.is_server_error() => SendError::new(
            ErrorClass::RetrySoon,
            None,
            format!("HTTP {status} from the Graph API"),
        ),
        Err(_) => SendError::new(
            ErrorClass::NeverRetry { suppress: false },
            None,
            format!("HTTP {status} from the Graph API"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_ride_in_urls_or_to_strange_hosts() {
        assert_eq!(
            without_token("https://graph.facebook.com/v23.0/1/message_templates?limit=100&access_token=EAAx&after=QVFI"),
            "https://graph.facebook.com/v23.0/1/message_templates?limit=100&after=QVFI"
        );
        let api = GraphApi::new("http://127.0.0.1:9000", "v23.0", Duration::from_secs(1));
        assert!(api.media_host("http://127.0.0.1:9000/sandbox/media/1"));
        assert!(api.media_host("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"));
        assert!(
            !api.media_host("http://lookaside.fbsbx.com/x"),
            "not over plain HTTP"
        );
        assert!(!api.media_host("https://evil.example/fbsbx.com"));
        assert!(!api.media_host("https://fbsbx.com.evil.example/x"));
        assert!(!api.media_host("http://127.0.0.1:9001/x"));
    }
}
