//! Notification transports: SMTP when configured, otherwise the log.

use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use orderly_core::ports::{Notification, Notifier, NotifyError};

/// The log notifier (the default when no SMTP server is configured) is core's.
pub use orderly_core::ports::LogNotifier;

/// Sends mail through an SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpNotifier {
    /// `url` as lettre reads it: `smtp://host:25` (plain, or STARTTLS when offered is not
    /// attempted), `smtp://host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465`.
    pub fn new(url: &str, from: &str) -> Result<SmtpNotifier, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        Ok(SmtpNotifier { transport, from })
    }

    /// Sends one plain-text mail (customer notifications, alarm mail).
    pub async fn send_mail(
        &self,
        to: &orderly_core::Email,
        subject: &str,
        body: &str,
    ) -> Result<(), NotifyError> {
        let to = to.as_str().parse::<Mailbox>().map_err(|e| NotifyError {
            transient: false,
            message: format!("invalid recipient: {e}"),
        })?;
        let mail = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.to_owned())
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| NotifyError {
                transient: false,
                message: format!("cannot build the mail: {e}"),
            })?;
        self.transport.send(mail).await.map_err(|e| NotifyError {
            transient: !e.is_permanent(),
            message: e.to_string(),
        })?;
        Ok(())
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn transport(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        self.send_mail(&n.to, &n.subject, &n.body).await?;
        tracing::info!(order_id = %n.order_id, to = %n.to, subject = %n.subject, "mail sent");
        Ok(())
    }
}
