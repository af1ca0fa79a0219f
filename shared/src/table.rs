//! One table per string enum: each variant next to its name on the wire.
//!
//! [`string_enum!`] declares an enum of unit variants from its table (`Variant => "name"`) and
//! generates everything that reads or writes the name: `as_str`, `parse`, [`FromStr`], `ALL`,
//! `NAMES`, and serde's `Serialize`/`Deserialize` as that string. [`error_codes!`] does the same
//! with an HTTP status per code. [`tagged_enum!`] declares an enum whose variants carry data
//! (serde writes its name in a tag field, `{"kind": "agent", ...}`): the names are given to serde
//! from the same table, and a unit enum of the tags (`FooTag`) is declared with
//! [`string_enum!`], so a reader can dispatch on the tag with an exhaustive `match`.
//!
//! Adding a variant is one line in one table; every `match` that does not handle it fails to
//! compile (there are no `_ =>` arms over these enums). The model is meilisearch's
//! `make_error_codes!` (crates/meilisearch-types/src/error.rs).
//!
//! [`FromStr`]: core::str::FromStr

/// What every enum declared by [`string_enum!`] can do, for code generic over them (serde's
/// visitor, the light codec, tests).
pub trait StringEnum: Copy + Eq + core::fmt::Debug + 'static {
    /// Every variant, in table order.
    const ALL: &'static [Self];
    /// Every name, in table order.
    const NAMES: &'static [&'static str];

    /// The name on the wire.
    fn name(self) -> &'static str;

    /// The variant named `name`; `None` for a name not in the table.
    fn from_name(name: &str) -> Option<Self>;

    /// What a peer's `name` means. The table's own name, except for an enum with a declared
    /// fallback (`ErrorCode::Unknown`): a newer peer's name reads as the fallback.
    fn read(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

/// The error `FromStr` gives for a name not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name `{name}`, expected one of {expected:?}")]
pub struct UnknownName {
    pub name: String,
    pub expected: &'static [&'static str],
}

/// Serde's visitor for a [`StringEnum`]: a string, read with [`StringEnum::read`].
pub(crate) struct NameVisitor<T>(pub(crate) core::marker::PhantomData<T>);

impl<T: StringEnum> serde::de::Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "one of {:?}", T::NAMES)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::read(v).ok_or_else(|| E::unknown_variant(v, T::NAMES))
    }
}

/// Declares a unit enum from its table; see the [module](self) documentation.
///
/// ```ignore
/// string_enum! {
///     /// An account's role on a site.
///     pub enum Role {
///         Owner => "owner",
///         Agent => "agent",
///     }
/// }
/// ```
///
/// An optional `fallback Variant;` after the table makes every unknown name read as that
/// variant (for codes a newer peer may send).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $( $(#[$vmeta:meta])* $Variant:ident => $name:literal ),+ $(,)?
        }
        $(fallback $Fallback:ident;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $Enum {
            $( $(#[$vmeta])* $Variant, )+
        }

        impl $Enum {
            /// Every variant, in table order.
            pub const ALL: &'static [Self] = &[$(Self::$Variant),+];
            /// Every name on the wire, in table order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$Variant => $name,)+
                }
            }

            /// The variant named `name` ([`Self::as_str`] back); `None` for any other name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$Variant),)+
                    _ => None,
                }
            }
        }

        impl $crate::table::StringEnum for $Enum {
            const ALL: &'static [Self] = Self::ALL;
            const NAMES: &'static [&'static str] = Self::NAMES;

            fn name(self) -> &'static str {
                self.as_str()
            }

            fn from_name(name: &str) -> Option<Self> {
                Self::parse(name)
            }

            $(
                fn read(name: &str) -> Option<Self> {
                    Some(Self::parse(name).unwrap_or(Self::$Fallback))
                }
            )?
        }

        $(
            impl $Enum {
                /// What a peer's `name` means: the variant of that name, or
                #[doc = concat!("[`", stringify!($Enum), "::", stringify!($Fallback), "`]")]
                /// for a name this side does not know (a newer peer's).
                pub fn from_wire(name: &str) -> Self {
                    Self::parse(name).unwrap_or(Self::$Fallback)
                }
            }
        )?

        impl core::str::FromStr for $Enum {
            type Err = $crate::table::UnknownName;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                Self::parse(name).ok_or_else(|| $crate::table::UnknownName {
                    name: name.to_owned(),
                    expected: Self::NAMES,
                })
            }
        }

        impl core::fmt::Display for $Enum {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $Enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $Enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::table::NameVisitor(core::marker::PhantomData))
            }
        }
    };
}

/// [`string_enum!`] for error codes: each code also has its HTTP status,
/// `Variant => "name", status`.
macro_rules! error_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $( $(#[$vmeta:meta])* $Variant:ident => $name:literal, $status:literal ),+ $(,)?
        }
        $(fallback $Fallback:ident;)?
    ) => {
        string_enum! {
            $(#[$meta])*
            $vis enum $Enum {
                $( $(#[$vmeta])* $Variant => $name, )+
            }
            $(fallback $Fallback;)?
        }

        impl $Enum {
            /// The HTTP status of a response carrying this code.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(Self::$Variant => $status,)+
                }
            }
        }
    };
}

/// Declares an enum whose variants carry data, tagged on the wire by a name from its table, and
/// the unit enum of its tags; see the [module](self) documentation.
///
/// ```ignore
/// tagged_enum! {
///     /// Who wrote a message.
///     #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
///     #[serde(tag = "kind")]
///     pub enum Author / AuthorTag {
///         Visitor => "visitor",
///         Agent(AgentRef) => "agent",
///     }
/// }
/// ```
///
/// The serde attributes of the container (`tag`, `content`) and of the fields are written as
/// usual; each variant gets `#[serde(rename = "name")]` from the table.
macro_rules! tagged_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident / $Tag:ident {
            $(
                $(#[$vmeta:meta])*
                $Variant:ident $( ( $($tuple:tt)* ) )? $( { $($fields:tt)* } )? => $name:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $Enum {
            $(
                $(#[$vmeta])*
                #[serde(rename = $name)]
                $Variant $( ( $($tuple)* ) )? $( { $($fields)* } )?,
            )+
        }

        string_enum! {
            #[doc = concat!("The tags of [`", stringify!($Enum), "`]: one per variant, named as on the wire.")]
            $vis enum $Tag {
                $( $Variant => $name, )+
            }
        }

        impl $Enum {
            /// The variant's tag.
            pub const fn tag(&self) -> $Tag {
                match self {
                    $(Self::$Variant { .. } => $Tag::$Variant,)+
                }
            }
        }
    };
}
