//! Chat prompts: messages in ChatML, as SmolLM2-Instruct's chat template writes them.

use std::fmt;

/// The system turn SmolLM2-Instruct's chat template inserts when the first message is not one.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    /// Instructions for the assistant.
    System,
    /// The person asking.
    User,
    /// An earlier answer.
    Assistant,
}

impl ChatRole {
    /// The role's name in ChatML (and in the OpenAI API): `system`, `user`, `assistant`.
    pub fn name(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }

    /// The role called `name`, if it is one of the three.
    pub fn from_name(name: &str) -> Option<ChatRole> {
        match name {
            "system" => Some(ChatRole::System),
            "user" => Some(ChatRole::User),
            "assistant" => Some(ChatRole::Assistant),
            _ => None,
        }
    }
}

impl fmt::Display for ChatRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One turn of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// What it says.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` saying `content`.
    pub fn new(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// The ChatML text of `messages`, ending where the assistant's next answer begins: each
/// message as `<|im_start|>{role}\n{content}<|im_end|>\n`, after a turn with
/// [`DEFAULT_SYSTEM`] when the first message is not a system message (as SmolLM2-Instruct's
/// template does), then `<|im_start|>assistant\n`.
///
/// ```
/// use greenmark_lm::{chat_text, ChatMessage, ChatRole};
///
/// let text = chat_text(&[
///     ChatMessage::new(ChatRole::System, "Be brief."),
///     ChatMessage::new(ChatRole::User, "Hi"),
/// ]);
/// assert_eq!(
///     text,
///     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
///      <|im_start|>assistant\n"
/// );
/// ```
pub fn chat_text(messages: &[ChatMessage]) -> String {
    let mut text = String::new();
    if messages.first().map(|m| m.role) != Some(ChatRole::System) {
        text.push_str(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"));
    }
    for message in messages {
        text.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            message.role, message.content
        ));
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_system_turn_comes_first_unless_one_is_given() {
        let user = ChatMessage::new(ChatRole::User, "Why?");
        assert_eq!(
            chat_text(std::slice::from_ref(&user)),
            format!(
                "<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n\
                 <|im_start|>assistant\n"
            )
        );
        let turns = [
            user.clone(),
            ChatMessage::new(ChatRole::Assistant, "Because."),
            ChatMessage::new(ChatRole::System, "Later rules."),
            ChatMessage::new(ChatRole::User, "And?"),
        ];
        let text = chat_text(&turns);
        assert!(text.starts_with(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}")));
        assert!(text.ends_with(
            "<|im_start|>assistant\nBecause.<|im_end|>\n<|im_start|>system\nLater rules.<|im_end|>\n\
             <|im_start|>user\nAnd?<|im_end|>\n<|im_start|>assistant\n"
        ));
        assert_eq!(text.matches(DEFAULT_SYSTEM).count(), 1);
        // An empty chat still opens the assistant's turn after the default system turn.
        assert!(chat_text(&[]).ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [ChatRole::System, ChatRole::User, ChatRole::Assistant] {
            assert_eq!(ChatRole::from_name(role.name()), Some(role));
        }
        assert_eq!(ChatRole::from_name("tool"), None);
    }
}
