//! The words the visitor reads: one table per language (English, German, French, Spanish),
//! chosen once at mount from `data-locale` or the browser's language ([`set_locale`]).
//!
//! A table is a plain struct of `&'static str`, so a missing translation is a compile error.
//! Texts with a `{}` are templates, filled by [`fill`].

use std::sync::atomic::{AtomicU8, Ordering};

use nexus_shared::{ConversationState, ErrorBody, ErrorCode, HandoffReason};

/// Every visible string of the visitor widget.
#[derive(Debug)]
pub struct Strings {
    pub open_chat: &'static str,
    pub close_chat: &'static str,
    /// `{}`: the assistant's name.
    pub chat_with: &'static str,
    pub messages: &'static str,
    pub input_label: &'static str,
    pub placeholder: &'static str,
    pub send: &'static str,
    pub talk_to_human: &'static str,
    /// The message sent for the visitor when they ask for a person before writing anything.
    pub talk_to_human_body: &'static str,
    pub retry: &'static str,
    pub not_sent: &'static str,
    pub sending: &'static str,
    pub dismiss: &'static str,
    pub default_assistant: &'static str,
    pub default_greeting: &'static str,
    /// `{}`: who is typing.
    pub typing: &'static str,
    pub source: &'static str,
    pub helpful: &'static str,
    pub not_helpful: &'static str,
    pub csat_question: &'static str,
    pub csat_comment: &'static str,
    pub csat_send: &'static str,
    /// `{}`: 1 to 5.
    pub star: &'static str,
    pub csat_thanks: &'static str,
    pub status_connecting: &'static str,
    pub status_online: &'static str,
    pub status_offline: &'static str,
    pub status_unavailable: &'static str,
    /// Connected, and someone from the team is online / nobody is.
    pub status_team: &'static str,
    pub status_away: &'static str,
    pub you: &'static str,
    pub notice: &'static str,
    pub support: &'static str,
    pub a_person: &'static str,
    /// `{}`: the agent's name.
    pub sub_human: &'static str,
    pub sub_human_anon: &'static str,
    pub sub_waiting: &'static str,
    pub sub_resolved: &'static str,
    pub sub_ai: &'static str,
    pub waiting: &'static str,
    /// `{}`: the reason, from the `reason_*` texts.
    pub waiting_because: &'static str,
    /// `{}`: the agent's name.
    pub joined: &'static str,
    /// `{}`: the position.
    pub queue: &'static str,
    pub reason_visitor_asked: &'static str,
    pub reason_low_confidence: &'static str,
    pub reason_out_of_scope: &'static str,
    pub reason_sensitive: &'static str,
    pub reason_frustration: &'static str,
    pub reason_repeated_failure: &'static str,
    pub reason_engine_error: &'static str,
    pub reason_engine_busy: &'static str,
    pub reason_agent_takeover: &'static str,
    pub reason_autonomy_off: &'static str,
    pub err_too_long: &'static str,
    pub err_empty: &'static str,
    pub err_rate_limited: &'static str,
    pub err_too_large: &'static str,
    pub err_not_here: &'static str,
    pub err_reload: &'static str,
    pub err_resolved: &'static str,
    pub err_busy: &'static str,
    pub err_not_possible: &'static str,
    pub err_identity: &'static str,
    pub err_other: &'static str,
    /// Nobody online: the email form.
    pub email_ask: &'static str,
    pub email_label: &'static str,
    pub email_send: &'static str,
    /// `{}`: the address.
    pub email_thanks: &'static str,
    pub email_invalid: &'static str,
    /// The history list.
    pub history: &'static str,
    pub new_conversation: &'static str,
    /// The history list's entry that switches the widget to agent mode.
    pub team_sign_in: &'static str,
    pub back: &'static str,
    pub no_history: &'static str,
    pub state_ai: &'static str,
    pub state_waiting: &'static str,
    pub state_human: &'static str,
    pub state_resolved: &'static str,
}

pub static EN: Strings = Strings {
    open_chat: "Open chat",
    close_chat: "Close chat",
    chat_with: "Chat with {}",
    messages: "Messages",
    input_label: "Your message",
    placeholder: "Write a message…",
    send: "Send message",
    talk_to_human: "Talk to a person",
    talk_to_human_body: "I'd like to talk to a person.",
    retry: "Retry",
    not_sent: "Not sent",
    sending: "Sending…",
    dismiss: "Dismiss",
    default_assistant: "Assistant",
    default_greeting: "Hi! How can I help you today?",
    typing: "{} is typing…",
    source: "Source:",
    helpful: "Helpful",
    not_helpful: "Not helpful",
    csat_question: "How did we do?",
    csat_comment: "Anything to add? (optional)",
    csat_send: "Send rating",
    star: "{} of 5",
    csat_thanks: "Thank you for your feedback!",
    status_connecting: "connecting",
    status_online: "online",
    status_offline: "offline - reconnecting",
    status_unavailable: "offline",
    status_team: "team online",
    status_away: "team away",
    you: "You",
    notice: "Notice",
    support: "Support",
    a_person: "A person",
    sub_human: "{} is answering",
    sub_human_anon: "A person is answering",
    sub_waiting: "Waiting for a person",
    sub_resolved: "Conversation closed. Write to reopen it.",
    sub_ai: "AI assistant",
    waiting: "Waiting for a person",
    waiting_because: "Waiting for a person — {}",
    joined: "{} joined",
    queue: "You're number {} in the queue",
    reason_visitor_asked: "you asked for a person",
    reason_low_confidence: "the assistant wasn't sure",
    reason_out_of_scope: "the assistant can't answer this one",
    reason_sensitive: "this needs a person's attention",
    reason_frustration: "we want to get this right for you",
    reason_repeated_failure: "the assistant couldn't help",
    reason_engine_error: "the assistant is having trouble",
    reason_engine_busy: "the assistant is busy",
    reason_agent_takeover: "a person is stepping in",
    reason_autonomy_off: "a person answers every question here",
    err_too_long: "That message is too long. Please shorten it and retry.",
    err_empty: "That message is empty.",
    err_rate_limited: "You're sending messages too fast. Wait a moment and retry.",
    err_too_large: "That message is too large to send.",
    err_not_here: "Chat isn't available on this website right now.",
    err_reload: "This chat needs a page reload to keep working.",
    err_resolved: "This conversation is closed. Write again to reopen it.",
    err_busy: "Chat is busy right now. We'll keep trying.",
    err_not_possible: "That isn't possible right now.",
    err_identity: "We couldn't verify who you are, so you're chatting as a guest.",
    err_other: "Something went wrong. Please try again.",
    email_ask: "Leave your email and we'll get back to you.",
    email_label: "Your email",
    email_send: "Send",
    email_thanks: "Thanks! We'll answer you at {}.",
    email_invalid: "Please enter a valid email address.",
    history: "Your conversations",
    new_conversation: "New conversation",
    team_sign_in: "Team sign-in",
    back: "Back",
    no_history: "No earlier conversations.",
    state_ai: "Open",
    state_waiting: "Waiting",
    state_human: "With a person",
    state_resolved: "Closed",
};

pub static DE: Strings = Strings {
    open_chat: "Chat öffnen",
    close_chat: "Chat schließen",
    chat_with: "Chat mit {}",
    messages: "Nachrichten",
    input_label: "Ihre Nachricht",
    placeholder: "Nachricht schreiben…",
    send: "Nachricht senden",
    talk_to_human: "Mit einem Menschen sprechen",
    talk_to_human_body: "Ich möchte mit einem Menschen sprechen.",
    retry: "Erneut senden",
    not_sent: "Nicht gesendet",
    sending: "Wird gesendet…",
    dismiss: "Schließen",
    default_assistant: "Assistent",
    default_greeting: "Hallo! Wie kann ich helfen?",
    typing: "{} schreibt…",
    source: "Quelle:",
    helpful: "Hilfreich",
    not_helpful: "Nicht hilfreich",
    csat_question: "Wie waren wir?",
    csat_comment: "Noch etwas? (optional)",
    csat_send: "Bewertung senden",
    star: "{} von 5",
    csat_thanks: "Danke für Ihr Feedback!",
    status_connecting: "verbinde",
    status_online: "online",
    status_offline: "offline – verbinde neu",
    status_unavailable: "offline",
    status_team: "Team online",
    status_away: "Team abwesend",
    you: "Sie",
    notice: "Hinweis",
    support: "Support",
    a_person: "Ein Mensch",
    sub_human: "{} antwortet",
    sub_human_anon: "Ein Mensch antwortet",
    sub_waiting: "Warten auf einen Menschen",
    sub_resolved: "Gespräch beendet. Schreiben Sie, um es fortzusetzen.",
    sub_ai: "KI-Assistent",
    waiting: "Warten auf einen Menschen",
    waiting_because: "Warten auf einen Menschen — {}",
    joined: "{} ist da",
    queue: "Sie sind Nummer {} in der Warteschlange",
    reason_visitor_asked: "Sie haben nach einem Menschen gefragt",
    reason_low_confidence: "der Assistent war sich nicht sicher",
    reason_out_of_scope: "das kann der Assistent nicht beantworten",
    reason_sensitive: "das braucht einen Menschen",
    reason_frustration: "wir wollen das richtig für Sie lösen",
    reason_repeated_failure: "der Assistent konnte nicht helfen",
    reason_engine_error: "der Assistent hat gerade Probleme",
    reason_engine_busy: "der Assistent ist ausgelastet",
    reason_agent_takeover: "ein Mensch übernimmt",
    reason_autonomy_off: "hier beantwortet ein Mensch jede Frage",
    err_too_long: "Die Nachricht ist zu lang. Bitte kürzen und erneut senden.",
    err_empty: "Die Nachricht ist leer.",
    err_rate_limited: "Sie senden zu schnell. Bitte kurz warten.",
    err_too_large: "Die Nachricht ist zu groß.",
    err_not_here: "Der Chat ist auf dieser Website gerade nicht verfügbar.",
    err_reload: "Bitte laden Sie die Seite neu, um weiterzuchatten.",
    err_resolved: "Dieses Gespräch ist beendet. Schreiben Sie, um es fortzusetzen.",
    err_busy: "Der Chat ist ausgelastet. Wir versuchen es weiter.",
    err_not_possible: "Das geht gerade nicht.",
    err_identity: "Wir konnten Sie nicht bestätigen; Sie chatten als Gast.",
    err_other: "Etwas ist schiefgegangen. Bitte erneut versuchen.",
    email_ask: "Hinterlassen Sie Ihre E-Mail, wir melden uns.",
    email_label: "Ihre E-Mail",
    email_send: "Senden",
    email_thanks: "Danke! Wir antworten Ihnen an {}.",
    email_invalid: "Bitte eine gültige E-Mail-Adresse eingeben.",
    history: "Ihre Gespräche",
    new_conversation: "Neues Gespräch",
    team_sign_in: "Team-Anmeldung",
    back: "Zurück",
    no_history: "Keine früheren Gespräche.",
    state_ai: "Offen",
    state_waiting: "Wartet",
    state_human: "Bei einem Menschen",
    state_resolved: "Beendet",
};

pub static FR: Strings = Strings {
    open_chat: "Ouvrir le chat",
    close_chat: "Fermer le chat",
    chat_with: "Discuter avec {}",
    messages: "Messages",
    input_label: "Votre message",
    placeholder: "Écrivez un message…",
    send: "Envoyer le message",
    talk_to_human: "Parler à une personne",
    talk_to_human_body: "Je voudrais parler à une personne.",
    retry: "Réessayer",
    not_sent: "Non envoyé",
    sending: "Envoi…",
    dismiss: "Fermer",
    default_assistant: "Assistant",
    default_greeting: "Bonjour ! Comment puis-je vous aider ?",
    typing: "{} écrit…",
    source: "Source :",
    helpful: "Utile",
    not_helpful: "Pas utile",
    csat_question: "Comment s'est passé l'échange ?",
    csat_comment: "Un commentaire ? (facultatif)",
    csat_send: "Envoyer la note",
    star: "{} sur 5",
    csat_thanks: "Merci pour votre avis !",
    status_connecting: "connexion",
    status_online: "en ligne",
    status_offline: "hors ligne – reconnexion",
    status_unavailable: "hors ligne",
    status_team: "équipe en ligne",
    status_away: "équipe absente",
    you: "Vous",
    notice: "Info",
    support: "Support",
    a_person: "Une personne",
    sub_human: "{} vous répond",
    sub_human_anon: "Une personne vous répond",
    sub_waiting: "En attente d'une personne",
    sub_resolved: "Conversation close. Écrivez pour la rouvrir.",
    sub_ai: "Assistant IA",
    waiting: "En attente d'une personne",
    waiting_because: "En attente d'une personne — {}",
    joined: "{} a rejoint",
    queue: "Vous êtes numéro {} dans la file",
    reason_visitor_asked: "vous avez demandé une personne",
    reason_low_confidence: "l'assistant n'était pas sûr",
    reason_out_of_scope: "l'assistant ne peut pas répondre à cela",
    reason_sensitive: "cela demande l'attention d'une personne",
    reason_frustration: "nous voulons bien faire les choses",
    reason_repeated_failure: "l'assistant n'a pas pu aider",
    reason_engine_error: "l'assistant rencontre un problème",
    reason_engine_busy: "l'assistant est très sollicité",
    reason_agent_takeover: "une personne prend le relais",
    reason_autonomy_off: "ici, une personne répond à chaque question",
    err_too_long: "Ce message est trop long. Raccourcissez-le et réessayez.",
    err_empty: "Ce message est vide.",
    err_rate_limited: "Vous envoyez trop vite. Patientez un instant.",
    err_too_large: "Ce message est trop volumineux.",
    err_not_here: "Le chat n'est pas disponible sur ce site pour le moment.",
    err_reload: "Rechargez la page pour continuer à discuter.",
    err_resolved: "Cette conversation est close. Écrivez pour la rouvrir.",
    err_busy: "Le chat est très sollicité. Nous réessayons.",
    err_not_possible: "Ce n'est pas possible pour le moment.",
    err_identity: "Impossible de vérifier votre identité ; vous discutez en invité.",
    err_other: "Une erreur est survenue. Veuillez réessayer.",
    email_ask: "Laissez votre e-mail, nous vous répondrons.",
    email_label: "Votre e-mail",
    email_send: "Envoyer",
    email_thanks: "Merci ! Nous vous répondrons à {}.",
    email_invalid: "Saisissez une adresse e-mail valide.",
    history: "Vos conversations",
    new_conversation: "Nouvelle conversation",
    team_sign_in: "Connexion équipe",
    back: "Retour",
    no_history: "Aucune conversation précédente.",
    state_ai: "Ouverte",
    state_waiting: "En attente",
    state_human: "Avec une personne",
    state_resolved: "Close",
};

pub static ES: Strings = Strings {
    open_chat: "Abrir chat",
    close_chat: "Cerrar chat",
    chat_with: "Chat con {}",
    messages: "Mensajes",
    input_label: "Tu mensaje",
    placeholder: "Escribe un mensaje…",
    send: "Enviar mensaje",
    talk_to_human: "Hablar con una persona",
    talk_to_human_body: "Quiero hablar con una persona.",
    retry: "Reintentar",
    not_sent: "No enviado",
    sending: "Enviando…",
    dismiss: "Cerrar",
    default_assistant: "Asistente",
    default_greeting: "¡Hola! ¿En qué puedo ayudarte?",
    typing: "{} está escribiendo…",
    source: "Fuente:",
    helpful: "Útil",
    not_helpful: "No útil",
    csat_question: "¿Qué tal lo hicimos?",
    csat_comment: "¿Algo más? (opcional)",
    csat_send: "Enviar valoración",
    star: "{} de 5",
    csat_thanks: "¡Gracias por tu opinión!",
    status_connecting: "conectando",
    status_online: "en línea",
    status_offline: "sin conexión – reconectando",
    status_unavailable: "sin conexión",
    status_team: "equipo en línea",
    status_away: "equipo ausente",
    you: "Tú",
    notice: "Aviso",
    support: "Soporte",
    a_person: "Una persona",
    sub_human: "{} te atiende",
    sub_human_anon: "Una persona te atiende",
    sub_waiting: "Esperando a una persona",
    sub_resolved: "Conversación cerrada. Escribe para reabrirla.",
    sub_ai: "Asistente de IA",
    waiting: "Esperando a una persona",
    waiting_because: "Esperando a una persona — {}",
    joined: "{} se ha unido",
    queue: "Eres el número {} en la cola",
    reason_visitor_asked: "pediste hablar con una persona",
    reason_low_confidence: "el asistente no estaba seguro",
    reason_out_of_scope: "el asistente no puede responder a esto",
    reason_sensitive: "esto necesita la atención de una persona",
    reason_frustration: "queremos resolverlo bien",
    reason_repeated_failure: "el asistente no pudo ayudar",
    reason_engine_error: "el asistente tiene problemas",
    reason_engine_busy: "el asistente está ocupado",
    reason_agent_takeover: "una persona se hace cargo",
    reason_autonomy_off: "aquí una persona responde cada pregunta",
    err_too_long: "El mensaje es demasiado largo. Acórtalo y reinténtalo.",
    err_empty: "El mensaje está vacío.",
    err_rate_limited: "Estás enviando demasiado rápido. Espera un momento.",
    err_too_large: "El mensaje es demasiado grande.",
    err_not_here: "El chat no está disponible en este sitio ahora mismo.",
    err_reload: "Recarga la página para seguir chateando.",
    err_resolved: "Esta conversación está cerrada. Escribe para reabrirla.",
    err_busy: "El chat está ocupado. Seguimos intentándolo.",
    err_not_possible: "Eso no es posible ahora.",
    err_identity: "No pudimos verificar tu identidad; chateas como invitado.",
    err_other: "Algo salió mal. Inténtalo de nuevo.",
    email_ask: "Déjanos tu correo y te responderemos.",
    email_label: "Tu correo",
    email_send: "Enviar",
    email_thanks: "¡Gracias! Te responderemos en {}.",
    email_invalid: "Introduce un correo válido.",
    history: "Tus conversaciones",
    new_conversation: "Nueva conversación",
    team_sign_in: "Acceso del equipo",
    back: "Volver",
    no_history: "No hay conversaciones anteriores.",
    state_ai: "Abierta",
    state_waiting: "En espera",
    state_human: "Con una persona",
    state_resolved: "Cerrada",
};

/// The tables, in the order of [`locale_index`]'s answers.
static TABLES: [&Strings; 4] = [&EN, &DE, &FR, &ES];

static LOCALE: AtomicU8 = AtomicU8::new(0);

/// Which table a BCP 47 tag (`de`, `fr-CA`, `es-419`, …) picks; English for anything else.
pub fn locale_index(tag: &str) -> u8 {
    let lang = tag.get(..2).unwrap_or("").to_ascii_lowercase();
    let rest = tag.get(2..).unwrap_or("");
    if !(rest.is_empty() || rest.starts_with(['-', '_'])) {
        return 0;
    }
    match lang.as_str() {
        "de" => 1,
        "fr" => 2,
        "es" => 3,
        _ => 0,
    }
}

/// Chooses the language for the rest of the page's life.
pub fn set_locale(tag: Option<&str>) {
    LOCALE.store(tag.map_or(0, locale_index), Ordering::Relaxed);
}

/// The current table.
pub fn t() -> &'static Strings {
    TABLES[usize::from(LOCALE.load(Ordering::Relaxed)) & 3]
}

/// `template` with its `{}` replaced by `value` (a `char` search: a `&str` pattern would link
/// the two-way string searcher into the bundle).
pub fn fill(template: &str, value: &str) -> String {
    match template.find('{') {
        Some(at) if template[at..].starts_with("{}") => {
            [&template[..at], value, &template[at + 2..]].concat()
        }
        _ => template.to_owned(),
    }
}

/// The label above a bubble of the visitor or the system (the assistant and agents are
/// labelled with their names).
pub fn author_label(kind: &str) -> &'static str {
    let t = t();
    match kind {
        "visitor" => t.you,
        "system" => t.notice,
        _ => t.support,
    }
}

/// The header's subtitle: who answers right now.
pub fn subtitle(state: ConversationState, agent: Option<&str>) -> String {
    let t = t();
    match (state, agent) {
        (ConversationState::Human, Some(name)) => fill(t.sub_human, name),
        (ConversationState::Human, None) => t.sub_human_anon.to_owned(),
        (ConversationState::Waiting, _) => t.sub_waiting.to_owned(),
        (ConversationState::Resolved, _) => t.sub_resolved.to_owned(),
        (ConversationState::Ai, _) => t.sub_ai.to_owned(),
    }
}

/// A conversation's state in the history list.
pub fn state_label(state: ConversationState) -> &'static str {
    let t = t();
    match state {
        ConversationState::Ai => t.state_ai,
        ConversationState::Waiting => t.state_waiting,
        ConversationState::Human => t.state_human,
        ConversationState::Resolved => t.state_resolved,
    }
}

/// Why the conversation is waiting for a person, in plain words.
pub fn reason_text(reason: &HandoffReason) -> &'static str {
    let t = t();
    match reason {
        HandoffReason::VisitorAsked => t.reason_visitor_asked,
        HandoffReason::LowConfidence => t.reason_low_confidence,
        HandoffReason::OutOfScope => t.reason_out_of_scope,
        HandoffReason::Sensitive { .. } => t.reason_sensitive,
        HandoffReason::Frustration => t.reason_frustration,
        HandoffReason::RepeatedFailure => t.reason_repeated_failure,
        HandoffReason::EngineError => t.reason_engine_error,
        HandoffReason::EngineBusy => t.reason_engine_busy,
        HandoffReason::AgentTakeover => t.reason_agent_takeover,
        HandoffReason::AutonomyOff => t.reason_autonomy_off,
    }
}

/// The handoff banner's text.
pub fn waiting_banner(reason: Option<&HandoffReason>) -> String {
    match reason {
        Some(r) => fill(t().waiting_because, reason_text(r)),
        None => t().waiting.to_owned(),
    }
}

/// An error frame in plain words. The server's own message is for people too, but the code
/// is what we can promise to word well (and translate).
pub fn error_text(err: &ErrorBody) -> &'static str {
    let t = t();
    match err.code {
        ErrorCode::MessageTooLong => t.err_too_long,
        ErrorCode::EmptyMessage => t.err_empty,
        ErrorCode::RateLimited => t.err_rate_limited,
        ErrorCode::FrameTooLarge => t.err_too_large,
        ErrorCode::UnknownSite | ErrorCode::OriginNotAllowed => t.err_not_here,
        ErrorCode::UnsupportedVersion => t.err_reload,
        ErrorCode::ConversationResolved => t.err_resolved,
        ErrorCode::Unavailable | ErrorCode::TooManyConnections => t.err_busy,
        ErrorCode::InvalidTransition => t.err_not_possible,
        ErrorCode::IdentityInvalid => t.err_identity,
        ErrorCode::Validation => t.email_invalid,
        ErrorCode::BadFrame
        | ErrorCode::HelloRequired
        | ErrorCode::Unauthorized
        | ErrorCode::Forbidden
        | ErrorCode::NotFound
        | ErrorCode::NotAssignee
        | ErrorCode::InvalidCredentials
        | ErrorCode::LoginThrottled
        | ErrorCode::RequestTimeout
        | ErrorCode::Internal
        | ErrorCode::Unknown => t.err_other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pick_their_table() {
        assert_eq!(locale_index("de"), 1);
        assert_eq!(locale_index("de-CH"), 1);
        assert_eq!(locale_index("FR_ca"), 2);
        assert_eq!(locale_index("es-419"), 3);
        assert_eq!(locale_index("en-GB"), 0);
        assert_eq!(locale_index("dex"), 0);
        assert_eq!(locale_index(""), 0);
        assert_eq!(locale_index("ü"), 0);
    }

    #[test]
    fn every_table_has_its_templates_and_differs_from_english() {
        for table in TABLES {
            for template in [
                table.chat_with,
                table.typing,
                table.star,
                table.sub_human,
                table.waiting_because,
                table.joined,
                table.queue,
                table.email_thanks,
            ] {
                assert_eq!(template.matches("{}").count(), 1, "{template}");
            }
        }
        for table in [&DE, &FR, &ES] {
            assert_ne!(table.talk_to_human, EN.talk_to_human);
            assert_ne!(table.placeholder, EN.placeholder);
        }
        assert_eq!(
            fill(DE.queue, "2"),
            "Sie sind Nummer 2 in der Warteschlange"
        );
    }
}
