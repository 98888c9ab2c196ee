//! Every action of a Query API is declared once, as a row `Name =>
//! module::Input` of a `declare!` table. The row's input type has an
//! inherent `parse(&QueryParams) -> Result<Self, E>` and `async
//! execute(self, &Context) -> Result<String, E>`; the macro generates from
//! the table the action enum, the parser that dispatches on `Action=`, the
//! list of names (for the compatibility docs and the coverage tests), the
//! IAM action name each request needs (`ec2:RunInstances`), and the
//! function that runs a parsed action. Adding an action is one row and its
//! input type; nothing else names it.

/// Declares a Query API's actions; see the module documentation. An API
/// with `dry_run: ERROR` gets a run function that takes a `dry_run` flag
/// (and answers ERROR when it is set); one without has no such flag.
macro_rules! declare {
    (
        $(#[$enum_doc:meta])*
        enum $enum:ident;
        $(#[$run_doc:meta])*
        fn $run:ident($ctx:ident, $err:ty, $(dry_run: $dry:expr,)? invalid: $invalid:path);
        service $service:literal;
        $($name:ident => $module:ident :: $input:ident,)+
    ) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $(
                #[doc = stringify!($name)]
                $name($module::$input),
            )+
        }

        impl $enum {
            /// Every action name this API serves, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];

            /// The IAM service prefix of this API's actions.
            pub const SERVICE: &'static str = $service;

            /// Parses the parameters of `action`; unknown actions are
            /// refused.
            pub fn parse(action: &str, params: &$crate::query::QueryParams) -> Result<Self, $err> {
                match action {
                    $(stringify!($name) => Ok(Self::$name($module::$input::parse(params)?)),)+
                    other => Err($invalid(other.to_owned())),
                }
            }

            /// This action's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)+
                }
            }

            /// The IAM action a caller needs for it (`ec2:RunInstances`).
            pub fn iam_action(&self) -> String {
                format!("{}:{}", Self::SERVICE, self.name())
            }

            /// Runs the action's input.
            async fn execute_input(self, ctx: &$ctx<'_>) -> Result<String, $err> {
                match self {
                    $(Self::$name(input) => input.execute(ctx).await,)+
                }
            }
        }

        $crate::actions::declare! {
            @run $(#[$run_doc])* fn $run($ctx, $err, $enum) [$($dry)?]
        }
    };
    (@run $(#[$run_doc:meta])* fn $run:ident($ctx:ident, $err:ty, $enum:ident) [$dry:expr]) => {
        $(#[$run_doc])*
        pub async fn $run(
            ctx: &$ctx<'_>,
            action: $enum,
            dry_run: bool,
        ) -> Result<String, $err> {
            if dry_run {
                return Err($dry);
            }
            action.execute_input(ctx).await
        }
    };
    (@run $(#[$run_doc:meta])* fn $run:ident($ctx:ident, $err:ty, $enum:ident) []) => {
        $(#[$run_doc])*
        pub async fn $run(ctx: &$ctx<'_>, action: $enum) -> Result<String, $err> {
            action.execute_input(ctx).await
        }
    };
}

pub(crate) use declare;
